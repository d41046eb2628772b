"""Every training setting in one place: one dataclass per sub-command, loadable from TOML.

Modules: base (declaring a field with its option; type coercion), data / classifier / detector
(the dataclasses, by job), files (--config TOML files, and the settings a run saves),
options (the argparse options generated from the fields).
"""
from training.config.base import ConfigError, setting
from training.config.classifier import (CalibrateConfig, EvaluateConfig, ExportConfig, PredictConfig, RecoverConfig, SoupConfig,
                                         TeachConfig, TrainConfig, TuneConfig)
from training.config.data import EdaConfig, PrepareConfig, SplitConfig
from training.config.detector import (
    DATA_DIR,
    STOCK_DIR,
    EvalDetectorConfig,
    ExportDetectorConfig,
    FinetuneDetectorConfig,
    SynthConfig,
)
from training.config.files import CONFIG_VERSION, SECTIONS, load_saved, load_toml, make_config, saved_dict, to_dict

__all__ = [
    "CONFIG_VERSION", "DATA_DIR", "SECTIONS", "STOCK_DIR", "ConfigError", "EdaConfig", "EvalDetectorConfig", "EvaluateConfig",
    "ExportConfig", "ExportDetectorConfig", "FinetuneDetectorConfig", "PredictConfig", "PrepareConfig", "RecoverConfig", "SoupConfig", "SplitConfig",
    "SynthConfig", "TeachConfig", "TrainConfig", "TuneConfig", "load_saved", "load_toml", "make_config", "saved_dict", "setting", "to_dict",
]
