"""The controller's configuration: TOML on disk, the same schema inline in scenarios.

:mod:`mux.config.schema` is the schema as frozen dataclasses (and the built-in demo);
:mod:`mux.config.parse` checks plain data against it and collects every mistake with its
``file:line``. Callers import from here: ``from mux.config import Config, load_config``.
"""

from mux.config.parse import demo_config, load_config, parse_config
from mux.config.schema import (
    DEFAULT_COLORS,
    NAME_PATTERN,
    Accel,
    Config,
    DisplaySection,
    InputSection,
    MqttSection,
    MuxSection,
    PersonaConfig,
    RestartPolicy,
    SeatSection,
    default_control_socket,
    runtime_base,
)

__all__ = [
    "DEFAULT_COLORS",
    "NAME_PATTERN",
    "Accel",
    "Config",
    "DisplaySection",
    "InputSection",
    "MqttSection",
    "MuxSection",
    "PersonaConfig",
    "RestartPolicy",
    "SeatSection",
    "default_control_socket",
    "demo_config",
    "load_config",
    "parse_config",
    "runtime_base",
]
