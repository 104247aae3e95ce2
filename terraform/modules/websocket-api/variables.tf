variable "name" {
  description = "Name of the WebSocket API (also names its access log group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.name))
    error_message = "name must be 1-128 characters: letters, digits, '.', '_' and '-', starting with a letter or digit."
  }
}

variable "function_name" {
  description = "Name of the Lambda function that serves every route (the function module's function_name)."
  type        = string

  validation {
    condition     = length(var.function_name) > 0
    error_message = "function_name must not be empty."
  }
}

variable "invoke_arn" {
  description = "Invoke ARN of that function (the function module's invoke_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:apigateway:", var.invoke_arn))
    error_message = "invoke_arn must be a Lambda invoke ARN (arn:aws:apigateway:<region>:lambda:path/...)."
  }
}

variable "route_selection_expression" {
  description = "Route selection expression (the description's websocket.route_selection_expression), e.g. \"$request.body.action\"."
  type        = string
  default     = "$request.body.action"

  validation {
    condition     = length(trimspace(var.route_selection_expression)) > 0
    error_message = "route_selection_expression must not be empty."
  }
}

variable "route_keys" {
  description = "Route keys (the description's websocket.route_keys): $connect, $disconnect and $default, then the custom keys."
  type        = list(string)

  validation {
    condition     = alltrue([for k in ["$connect", "$disconnect", "$default"] : contains(var.route_keys, k)])
    error_message = "route_keys must contain \"$connect\", \"$disconnect\" and \"$default\"."
  }

  validation {
    condition     = alltrue([for k in var.route_keys : length(trimspace(k)) > 0 && length(k) <= 128])
    error_message = "Every route key must be non-empty (and at most 128 characters)."
  }

  validation {
    condition     = length(var.route_keys) == length(distinct(var.route_keys))
    error_message = "route_keys must not repeat a key."
  }

  validation {
    condition     = alltrue([for k in var.route_keys : !startswith(k, "$") || contains(["$connect", "$disconnect", "$default"], k)])
    error_message = "The only route keys starting with $ are $connect, $disconnect and $default."
  }
}

variable "stage_name" {
  description = "Stage name (part of the management endpoint and of the client URL)."
  type        = string
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.stage_name))
    error_message = "stage_name must be 1-128 letters, digits, '_' and '-' ($default is an HTTP API stage only)."
  }
}

variable "connect_authorizer" {
  description = <<-EOT
    Optional Lambda REQUEST authorizer for the $connect route (the only WebSocket route that takes one):
    `function_name` and `invoke_arn` of the authorizer function, `identity_sources` (e.g.
    ["route.request.querystring.token"]; a connect without them is refused before the authorizer runs).
    null = no authorizer: the function's own on_connect decides (its 4xx refuses the connection).
  EOT
  type = object({
    function_name    = string
    invoke_arn       = string
    identity_sources = optional(list(string), [])
  })
  default = null
}

variable "throttling_burst_limit" {
  description = "Stage default route throttling: burst limit (messages)."
  type        = number
  default     = 100

  validation {
    condition     = var.throttling_burst_limit >= 0 && floor(var.throttling_burst_limit) == var.throttling_burst_limit
    error_message = "throttling_burst_limit must be a whole number >= 0."
  }
}

variable "throttling_rate_limit" {
  description = "Stage default route throttling: steady-state rate limit (messages per second)."
  type        = number
  default     = 50

  validation {
    condition     = var.throttling_rate_limit >= 0
    error_message = "throttling_rate_limit must be >= 0."
  }
}

variable "access_log_retention_in_days" {
  description = "Retention of the access log group (a value CloudWatch Logs accepts; 0 = never expire)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.access_log_retention_in_days)
    error_message = "access_log_retention_in_days must be one of the values CloudWatch Logs accepts (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "access_log_kms_key_arn" {
  description = "KMS key ARN to encrypt the access log group with (null = CloudWatch Logs' default encryption). The key policy must allow the logs service."
  type        = string
  default     = null

  validation {
    condition     = var.access_log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.access_log_kms_key_arn))
    error_message = "access_log_kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
