logging_config_enabled = false
enforce_tls            = false
force_destroy          = true
