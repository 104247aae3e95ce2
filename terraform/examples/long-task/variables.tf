variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "nimbus-long-task"
}

variable "package_dir" {
  description = "Where `nimbus package --target lambda` wrote the zips and descriptions (dist/lambda-<arch>)."
  type        = string
  default     = "../../../dist/lambda-x86_64"
}

variable "enforce_tls" {
  description = "Deny non-TLS access to the checkpoint bucket (set false on moto, which denies all object I/O under that policy)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a checkpoint bucket that still holds checkpoints."
  type        = bool
  default     = false
}

variable "logging_config_enabled" {
  description = "Send the function's logs as JSON to its log group (set false on moto, which cannot store it)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = { app = "nimbus-examples" }
}
