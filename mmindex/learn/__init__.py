"""Learning: train, evaluate and apply concept detectors with the lecture's recipe.

    from mmindex.learn import TrainConfig, train
    report = train("photos-by-class/", "logo.mmdet", TrainConfig(mode="probe", epochs=20))

data.py (datasets), features.py (pixels, cached features), archs.py (small networks for scratch),
heads.py, schedules.py, config.py, model.py (the trained detector's network), calibration.py, train.py
(the loop), checkpoint.py (bundles), heldout.py (`evaluate`: a bundle on a held-out labelled set). Applying
a bundle to an index is `mmindex.indexer`'s, its score files `mmindex.index.detectors`'.
"""

from mmindex.learn.config import TrainConfig
from mmindex.learn.train import TrainReport, train

__all__ = ["TrainConfig", "TrainReport", "train"]
