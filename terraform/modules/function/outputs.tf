output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "ARN for API Gateway integrations (`integration_uri`)."
  value       = aws_lambda_function.this.invoke_arn
}

output "qualified_arn" {
  description = "ARN of the function's current version (`:$LATEST` unless published)."
  value       = aws_lambda_function.this.qualified_arn
}

output "role_name" {
  description = "Name of the function's execution role (attach further policies to it)."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group (`/aws/lambda/<name>`)."
  value       = aws_cloudwatch_log_group.this.name
}

output "log_group_arn" {
  description = "ARN of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "function_url" {
  description = "The Function URL, or null when create_function_url is false."
  value       = var.create_function_url ? aws_lambda_function_url.this[0].function_url : null
}

output "layer_arn" {
  description = "ARN of the runtime layer version the function uses (created here or given as layer_arn), or null for package_type = \"zip\"."
  value       = local.layer_arn
}

output "description" {
  description = "The decoded function description (`<function>.json`)."
  value       = local.raw
}

output "kind" {
  description = "The function's kind: http, event, task or websocket."
  value       = local.d.kind
}

output "routes" {
  description = "API Gateway HTTP API route keys the function serves (the http-api module's `functions[*].routes`)."
  value       = local.d.routes
}

output "websocket" {
  description = "The description's websocket object (route_selection_expression, route_keys), or null."
  value       = local.description_websocket
}

output "environment" {
  description = "The function's final environment: var.environment with the module's NIMBUS_* variables on top."
  value       = local.environment
}

output "event_source_mapping_uuid" {
  description = "UUID of the continuation queue's event source mapping (task functions), or null."
  value       = local.is_task && var.durable_state != null ? aws_lambda_event_source_mapping.this[0].uuid : null
}
