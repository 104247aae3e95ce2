variable "parameters" {
  description = "SSM parameters to create, by full name (starting with `/`): `type` (`String` default, `StringList` as comma-separated text, or `SecureString`), `value` and an optional `description`. Sensitive: values never show in plans."
  type = map(object({
    type        = optional(string, "String")
    value       = string
    description = optional(string)
  }))
  sensitive = true

  validation {
    condition     = alltrue([for name in keys(var.parameters) : can(regex("^(/[A-Za-z0-9_.-]+)+$", name)) && length(name) <= 1011])
    error_message = "Every parameter name must start with \"/\" and hold only letters, digits, \"_\", \".\", \"-\" and \"/\" separators (no trailing \"/\"), at most 1011 characters: the names the function description lists."
  }
  validation {
    condition     = !anytrue([for name in keys(var.parameters) : can(regex("^/(?i:aws|ssm)", name))])
    error_message = "Parameter names starting with /aws or /ssm are reserved by AWS."
  }
  validation {
    condition     = alltrue([for p in values(var.parameters) : contains(["String", "StringList", "SecureString"], p.type)])
    error_message = "Parameter type must be \"String\", \"StringList\" or \"SecureString\"."
  }
  validation {
    condition     = alltrue([for p in values(var.parameters) : length(p.value) >= 1 && length(p.value) <= 4096])
    error_message = "Parameter values must be 1 to 4096 characters (SSM's standard tier)."
  }
}

variable "create_kms_key" {
  description = "Create a customer managed KMS key (rotation on, explicit key policy) for the SecureString parameters. Only used when a SecureString exists and kms_key_arn is null. False with no kms_key_arn: SSM's AWS managed key `aws/ssm`."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "An existing KMS key ARN for the SecureString parameters, instead of creating one."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
