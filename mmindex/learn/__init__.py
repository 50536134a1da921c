"""Learning: train, evaluate and apply concept detectors with the lecture's recipe.

    from mmindex.learn import TrainConfig, train
    report = train("photos-by-class/", "logo.mmdet", TrainConfig(mode="probe", epochs=20))

data.py (datasets), features.py (pixels, cached features), archs.py (small networks for scratch),
heads.py, schedules.py, config.py, model.py (the trained detector's network), calibration.py, fit.py (the one
training loop, for detectors, sequences and clips) and report.py (its `TrainReport`), train.py (detectors
through `fit`), sequence.py (recurrent networks), clips.py and video3d.py (3D CNNs), checkpoint.py (bundles),
heldout.py (`evaluate`: a bundle on a held-out labelled set). Applying a bundle to an index is
`mmindex.indexer`'s, its score files `mmindex.index.detectors`'.
"""

from mmindex.learn.config import TrainConfig
from mmindex.learn.fit import fit
from mmindex.learn.report import TrainReport
from mmindex.learn.train import train

__all__ = ["TrainConfig", "TrainReport", "fit", "train"]
