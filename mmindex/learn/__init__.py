"""Learning: train, evaluate and apply concept detectors with the lecture's recipe.

    from mmindex.learn import TrainConfig, train
    report = train("photos-by-class/", "logo.mmdet", TrainConfig(mode="probe", epochs=20))

data.py (datasets), features.py (pixels, cached features), archs.py (small networks for scratch),
heads.py, schedules.py, config.py, detector.py, calibration.py, train.py (the loop), checkpoint.py
(bundles), evaluation.py (`evaluate`), apply.py (scoring an index).
"""

from mmindex.learn.config import TrainConfig
from mmindex.learn.train import TrainReport, train

__all__ = ["TrainConfig", "TrainReport", "train"]
