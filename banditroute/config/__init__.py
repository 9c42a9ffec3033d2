"""The configuration: every tunable key, once, with its type, default, doc and check.

The face of the package; importers use these names. Where things live:
- keys.py      how a key is written (`key(...)`, checks, rules) and how a section is checked;
- sections.py  one frozen dataclass per TOML section, and `Config`, the whole file;
- records.py   the tables that hold records: `[[models]]`, `[auth].keys`, rule tables, profiles;
- load.py      TOML text -> Config (a user's file over the bundled one), and the environment's overrides;
- starter.py   the starter file `banditroute init` writes;
- reference.py docs/configuration.md, rendered from the fields.
"""

from banditroute.config.keys import ConfigError
from banditroute.config.load import (
    CONFIG_ENV,
    DATA_DIR_ENV,
    HOST_ENV,
    PORT_ENV,
    config_path,
    default_config_text,
    environment_server,
    load_config,
    parse_config,
    with_environment,
)
from banditroute.config.sections import (
    DEFAULT_RUBRIC,
    AdminConfig,
    AuthConfig,
    ClusterConfig,
    Config,
    DashboardConfig,
    FeaturesConfig,
    JudgeConfig,
    PolicyConfig,
    ProxyConfig,
    RewardConfig,
    RulesConfig,
    ServerConfig,
    validate,
)

__all__ = [
    "CONFIG_ENV",
    "DATA_DIR_ENV",
    "HOST_ENV",
    "PORT_ENV",
    "DEFAULT_RUBRIC",
    "AdminConfig",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DashboardConfig",
    "FeaturesConfig",
    "JudgeConfig",
    "PolicyConfig",
    "ProxyConfig",
    "RewardConfig",
    "RulesConfig",
    "ServerConfig",
    "config_path",
    "default_config_text",
    "environment_server",
    "load_config",
    "parse_config",
    "validate",
    "with_environment",
]
