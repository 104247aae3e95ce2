variable "name" {
  description = "Name of the DynamoDB table holding the key-value buckets (partition key `bucket`, sort key `key`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be 3-255 letters, digits, \"_\", \".\" or \"-\" (DynamoDB's table name rules)."
  }
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery (continuous backups for 35 days)."
  type        = bool
  default     = true
}

variable "create_kms_key" {
  description = "Create a customer managed KMS key (rotation on, explicit key policy) for the table when kms_key_arn is null. False with no kms_key_arn: DynamoDB's AWS managed key `aws/dynamodb`."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "An existing KMS key ARN for the table's encryption, instead of creating one."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "deletion_protection" {
  description = "Enable the table's deletion protection (destroy then fails until it is turned off)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
