variable "name" {
  description = "Name prefix of every resource: bucket \"<name>-state-<account>-<region>\" (unless bucket_name), table \"<name>-tasks\", queues \"<name>-tasks\" and \"<name>-tasks-dlq\", key alias \"alias/<name>-durable-state\". Usually \"<app>-<function>\" of the task function."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$", var.name))
    error_message = "name must be 1-60 lowercase letters, digits and '-', starting and ending with a letter or digit (it prefixes an S3 bucket name)."
  }
}

variable "bucket_name" {
  description = "Checkpoint bucket name (null = \"<name>-state-<account-id>-<region>\")."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')."
  }
}

variable "function_timeout_seconds" {
  description = "Timeout of the task function in seconds (its description's timeout_seconds, or the function module's timeout). Sets the queue's visibility timeout."
  type        = number

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 900 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number of seconds, 1..900 (Lambda's limits)."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the continuation queue (null = max(30, 6 x function_timeout_seconds), AWS's recommendation for event source mappings). Must be at least function_timeout_seconds + 3."
  type        = number
  default     = null

  validation {
    condition     = var.visibility_timeout_seconds == null || try(var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200 && floor(var.visibility_timeout_seconds) == var.visibility_timeout_seconds, false)
    error_message = "visibility_timeout_seconds must be a whole number of seconds, 0..43200 (SQS's limits)."
  }
}

variable "max_receive_count" {
  description = "Receives of a continuation message before SQS moves it to the dead-letter queue."
  type        = number
  default     = 10

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number, 1..1000."
  }
}

variable "message_retention_seconds" {
  description = "How long both queues keep a message (default 14 days, SQS's maximum: a continuation that is lost leaves its task stalled)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600 && floor(var.message_retention_seconds) == var.message_retention_seconds
    error_message = "message_retention_seconds must be a whole number of seconds, 60..1209600."
  }
}

variable "checkpoint_versioning" {
  description = "Versioning of the checkpoint bucket: superseded checkpoints (which the runtime deletes) stay recoverable for noncurrent_version_expiration_days."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent versions under tasks/ expire (with versioning)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number >= 1."
  }
}

variable "enforce_tls" {
  description = "Attach a bucket policy denying requests without TLS (or below TLS 1.2). Keep true on AWS; moto-backed tests set false because moto ignores the policy's condition and denies all object I/O."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty checkpoint bucket (all object versions)."
  type        = bool
  default     = false
}

variable "point_in_time_recovery" {
  description = "Point-in-time recovery of the task table."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Deletion protection of the task table."
  type        = bool
  default     = false
}

variable "create_kms_key" {
  description = "Create a customer-managed KMS key (rotation on) for the bucket, table and queues when kms_key_arn is null. With false and no kms_key_arn: SSE-S3, DynamoDB's AWS-owned key and SQS-managed SSE."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Existing KMS key ARN for the bucket, table and queues (overrides create_kms_key). Its policy must let this account's IAM policies use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>; an alias ARN is not accepted by every service)."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Deletion window of the created KMS key."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30 && floor(var.kms_key_deletion_window_in_days) == var.kms_key_deletion_window_in_days
    error_message = "kms_key_deletion_window_in_days must be a whole number, 7..30."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
