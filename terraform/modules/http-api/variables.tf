variable "name" {
  description = "Name of the HTTP API (also names its access log group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.name))
    error_message = "name must be 1-128 characters: letters, digits, '.', '_' and '-', starting with a letter or digit."
  }
}

variable "functions" {
  description = <<-EOT
    Functions behind the API, keyed by a short name of your choice. Each takes the function module's outputs:
    `function_name`, `invoke_arn`, `routes` (its declared route keys, e.g. "GET /hello", "ANY /items/{id}")
    and `catch_all` (true: it also gets the `$default` route; at most one function).
  EOT
  type = map(object({
    function_name = string
    invoke_arn    = string
    routes        = list(string)
    catch_all     = optional(bool, false)
  }))

  validation {
    condition     = length(var.functions) > 0
    error_message = "functions must name at least one function."
  }

  validation {
    condition     = length([for f in values(var.functions) : f if f.catch_all]) <= 1
    error_message = "At most one function may set catch_all = true (an API has one $default route)."
  }

  validation {
    condition = alltrue(flatten([
      for f in values(var.functions) : [
        for r in f.routes : can(regex("^(ANY|GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /[^ ]*$", r))
      ]
    ]))
    error_message = "Every declared route must be an HTTP API route key \"METHOD /path\" (METHOD one of ANY, GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS); use catch_all = true for $default."
  }

  validation {
    condition = (
      length(flatten([for f in values(var.functions) : f.routes])) ==
      length(distinct(flatten([for f in values(var.functions) : f.routes])))
    )
    error_message = "A route key may be declared by only one function (and only once); declared more than once: ${join(", ", distinct([for r in flatten([for f in values(var.functions) : f.routes]) : r if length([for x in flatten([for f in values(var.functions) : f.routes]) : x if x == r]) > 1]))}."
  }
}

variable "routes" {
  description = "Route keys to create (a subset of the declared ones, \"$default\" for the catch-all). null = every declared route. Naming a route no function declares fails at plan."
  type        = list(string)
  default     = null
}

variable "stage_name" {
  description = "Stage name. \"$default\" serves the API at its base URL."
  type        = string
  default     = "$default"

  validation {
    condition     = var.stage_name == "$default" || can(regex("^[A-Za-z0-9_-]{1,128}$", var.stage_name))
    error_message = "stage_name must be \"$default\" or 1-128 letters, digits, '_' and '-'."
  }
}

variable "throttling_burst_limit" {
  description = "Stage default route throttling: burst limit (requests)."
  type        = number
  default     = 100

  validation {
    condition     = var.throttling_burst_limit >= 0 && floor(var.throttling_burst_limit) == var.throttling_burst_limit
    error_message = "throttling_burst_limit must be a whole number >= 0."
  }
}

variable "throttling_rate_limit" {
  description = "Stage default route throttling: steady-state rate limit (requests per second)."
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

variable "authorization_type" {
  description = "Authorization of every route: \"NONE\" (public; the functions authenticate requests themselves) or \"AWS_IAM\" (callers sign requests with SigV4)."
  type        = string
  default     = "NONE"

  validation {
    condition     = contains(["NONE", "AWS_IAM"], var.authorization_type)
    error_message = "authorization_type must be \"NONE\" or \"AWS_IAM\"."
  }
}

variable "cors_configuration" {
  description = "CORS settings of the API (null = none; API Gateway then passes OPTIONS requests to the routes)."
  type = object({
    allow_origins     = list(string)
    allow_methods     = optional(list(string))
    allow_headers     = optional(list(string))
    expose_headers    = optional(list(string))
    allow_credentials = optional(bool)
    max_age           = optional(number)
  })
  default = null
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
