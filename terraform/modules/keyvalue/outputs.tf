output "table_name" {
  description = "Name of the key-value table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the key-value table."
  value       = aws_dynamodb_table.this.arn
}

output "kms_key_arn" {
  description = "The table's KMS key (created here or given), or null for DynamoDB's AWS managed key."
  value       = local.kms_key_arn
}

output "environment" {
  description = "The environment the runtime reads: {NIMBUS_KV_TABLE = name} (the function module sets it itself from `keyvalue`)."
  value       = { NIMBUS_KV_TABLE = aws_dynamodb_table.this.name }
}

output "function_input" {
  description = "The object the function module's `keyvalue` input takes."
  value = {
    table_name  = aws_dynamodb_table.this.name
    table_arn   = aws_dynamodb_table.this.arn
    kms_key_arn = local.kms_key_arn
  }
}
