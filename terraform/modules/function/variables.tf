variable "description_file" {
  description = "Path to the function description `<function>.json` written by `nimbus package`; the zips it names are read from the same directory."
  type        = string

  validation {
    condition     = fileexists(var.description_file)
    error_message = "description_file does not name an existing file: run `nimbus package --target lambda --arch ARCH -o dist` and pass dist/lambda-<arch>/<function>.json."
  }
}

variable "function_name" {
  description = "Name of the Lambda function (also its IAM role and log group `/aws/lambda/<name>`). Null: `<app>-<function>` from the description."
  type        = string
  default     = null

  validation {
    condition     = var.function_name == null || can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1-64 letters, digits, hyphens or underscores (Lambda's and IAM's limit)."
  }
}

variable "package_type" {
  description = "`zip`: deploy the self-contained `<function>.zip`. `layer`: deploy `<function>-code.zip` with the runtime (`nimbus-runtime.zip`) as a Lambda layer (created here unless `layer_arn` is set)."
  type        = string
  default     = "zip"

  validation {
    condition     = contains(["zip", "layer"], var.package_type)
    error_message = "package_type must be \"zip\" or \"layer\"."
  }
}

variable "layer_arn" {
  description = "With `package_type = \"layer\"`: an existing Nimbus runtime layer version ARN (e.g. another function module's `layer_arn` output) to use instead of creating one."
  type        = string
  default     = null

  validation {
    condition     = var.layer_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", var.layer_arn))
    error_message = "layer_arn must be a Lambda layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION)."
  }
}

variable "architecture" {
  description = "Lambda architecture, `x86_64` or `arm64`. Null: the description's. A value other than the description's fails at plan: the package holds a bootstrap for exactly one architecture."
  type        = string
  default     = null

  validation {
    condition     = var.architecture == null || contains(["x86_64", "arm64"], coalesce(var.architecture, "x86_64"))
    error_message = "architecture must be \"x86_64\" or \"arm64\" (Lambda's names)."
  }
}

variable "memory_size" {
  description = "Lambda memory in MB. Null: the description's `memory_mb` (the manifest's memory limit plus 128 MiB host headroom)."
  type        = number
  default     = null

  validation {
    condition     = var.memory_size == null || (coalesce(var.memory_size, 128) >= 128 && coalesce(var.memory_size, 128) <= 10240)
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Lambda timeout in seconds. Null: the description's `timeout_seconds` (the manifest's `timeout`, which also bounds each invocation inside the runtime)."
  type        = number
  default     = null

  validation {
    condition     = var.timeout == null || (coalesce(var.timeout, 1) >= 1 && coalesce(var.timeout, 1) <= 900)
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency: -1 for none, 0 to stop the function, else the maximum number of environments."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions
    error_message = "reserved_concurrent_executions must be -1 (unreserved) or a whole number >= 0."
  }
}

variable "environment" {
  description = "Extra environment variables (e.g. the values of the manifest's `env = ...` config keys, `NIMBUS_METRICS`). The module's own NIMBUS_* variables are set on top; a key that collides with one of them fails at plan."
  type        = map(string)
  default     = {}

  validation {
    condition = length(setintersection(keys(var.environment), [
      "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
      "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
      "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
      "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
      "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    ])) == 0
    error_message = "environment sets a variable Lambda reserves (AWS_REGION, AWS_LAMBDA_*, _HANDLER, LAMBDA_TASK_ROOT, credentials, ...): Lambda sets these itself and rejects them."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing mode: `Active` (sampled traces; grants xray:PutTraceSegments/PutTelemetryRecords) or `PassThrough` (no X-Ray statement)."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be \"Active\" or \"PassThrough\"."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the function's log group `/aws/lambda/<name>`, in days (0 = never expire)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch Logs' values: 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key ARN encrypting the log group (its key policy must allow logs.<region>.amazonaws.com). Null: CloudWatch Logs' own encryption."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN."
  }
}

variable "logging_config_enabled" {
  description = "Set the function's `logging_config` (JSON log format, the module's log group). False drops the block (moto cannot store it and would show a diff on every plan); Lambda then uses `/aws/lambda/<name>` in text format."
  type        = bool
  default     = true
}

variable "log_level" {
  description = "Host log filter, set as `NIMBUS_LOG` (e.g. `info`, `debug`, `nimbus=debug,warn`). Null: the runtime's default (`info`)."
  type        = string
  default     = null

  validation {
    condition     = var.log_level == null || can(regex("^[A-Za-z0-9_:=,.-]+$", coalesce(var.log_level, "info")))
    error_message = "log_level must be a log filter such as \"info\", \"debug\" or \"nimbus=debug,warn\"."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the function's environment variables (grants the role kms:Decrypt on it). Null: Lambda's AWS managed key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "create_function_url" {
  description = "Create a Lambda Function URL for the function."
  type        = bool
  default     = false
}

variable "function_url_authorization_type" {
  description = "Function URL auth: `AWS_IAM` (SigV4-signed callers with lambda:InvokeFunctionUrl) or `NONE` (public)."
  type        = string
  default     = "AWS_IAM"

  validation {
    condition     = contains(["AWS_IAM", "NONE"], var.function_url_authorization_type)
    error_message = "function_url_authorization_type must be \"AWS_IAM\" or \"NONE\"."
  }
}

variable "dead_letter_target_arn" {
  description = "SQS queue or SNS topic ARN receiving asynchronous invocations that failed every retry (`dead_letter_config`; grants sqs:SendMessage or sns:Publish on it). Null: none."
  type        = string
  default     = null

  validation {
    condition     = var.dead_letter_target_arn == null || can(regex("^arn:aws[a-z-]*:(sqs|sns):[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$", var.dead_letter_target_arn))
    error_message = "dead_letter_target_arn must be an SQS queue ARN or an SNS topic ARN."
  }
}

variable "ssm_parameters" {
  description = "Names of the SSM parameters this stack guarantees exist (e.g. `module.config.names`, plus names managed elsewhere). Every name the description's `ssm_parameters` lists must be here, else plan fails naming the missing ones."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.ssm_parameters : startswith(n, "/")])
    error_message = "ssm_parameters holds parameter names, each starting with \"/\" (not ARNs)."
  }
}

variable "ssm_kms_key_arns" {
  description = "Customer managed KMS keys of the SecureString parameters the function reads (kms:Decrypt through SSM only). The AWS managed `aws/ssm` key needs none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.ssm_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:", k))])
    error_message = "ssm_kms_key_arns must be KMS key ARNs."
  }
}

variable "keyvalue" {
  description = "The key-value table (the keyvalue module's `function_input`). Required when the description declares `keyvalue_buckets`; sets NIMBUS_KV_TABLE and grants access to the declared buckets only."
  type = object({
    table_name  = string
    table_arn   = string
    kms_key_arn = optional(string)
  })
  default = null
}

variable "durable_state" {
  description = "The durable task state (the durable-state module's `function_input`). Required for task functions and accepted only by them; sets the NIMBUS_STATE_BUCKET/TASK_TABLE/TASK_QUEUE_URL variables and the SQS event source mapping of the continuation queue."
  type = object({
    bucket_name                = string
    bucket_arn                 = string
    table_name                 = string
    table_arn                  = string
    queue_url                  = string
    queue_arn                  = string
    kms_key_arn                = optional(string)
    visibility_timeout_seconds = optional(number)
  })
  default = null
}

variable "websocket_api" {
  description = "The WebSocket API sends go to (the websocket-api module's `function_input`). Required for websocket functions; any other function may take it to send to clients. Sets NIMBUS_WEBSOCKET_ENDPOINT and grants execute-api:ManageConnections on that API's stage only."
  type = object({
    execution_arn       = string
    stage_name          = string
    management_endpoint = string
  })
  default = null
}

variable "role_permissions_boundary" {
  description = "ARN of a permissions boundary policy for the function's IAM role. Null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
