variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "nimbus-hello"
}

variable "package_dir" {
  description = "Where `nimbus package --target lambda` wrote the zips and descriptions (dist/lambda-<arch>)."
  type        = string
  default     = "../../../dist/lambda-x86_64"
}

variable "package_type" {
  description = "`zip` (bootstrap inside the function's zip) or `layer` (a runtime layer plus a thin code zip)."
  type        = string
  default     = "zip"
}

variable "routes" {
  description = "Routes to publish (default: every route the manifest declares)."
  type        = list(string)
  default     = null
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
