logging_config_enabled = false
