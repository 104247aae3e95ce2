output "names" {
  description = "Names of the parameters, sorted (the function module's `ssm_parameters`)."
  value       = local.names
}

output "arns" {
  description = "Parameter ARNs by name."
  value       = { for name in local.names : name => aws_ssm_parameter.this[name].arn }
}

output "kms_key_arn" {
  description = "The KMS key of the SecureString parameters (created here or given), or null when there is none or they use `aws/ssm` (pass it to the function module's `ssm_kms_key_arns`)."
  value       = local.kms_key_arn
}
