output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "Base URL of the API (https://{api-id}.execute-api.{region}.amazonaws.com)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "execution_arn" {
  description = "Execution ARN of the API (prefix of the invoke permissions' source ARNs)."
  value       = aws_apigatewayv2_api.this.execution_arn
}

output "stage_name" {
  description = "Name of the stage."
  value       = aws_apigatewayv2_stage.this.name
}

output "invoke_url" {
  description = "URL that invokes the stage (the base URL for the $default stage)."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "route_keys" {
  description = "Route keys created (sorted)."
  value       = sort(keys(aws_apigatewayv2_route.this))
}

output "routes" {
  description = "Route key => key of the function (in var.functions) it invokes."
  value       = local.routes
}

output "permission_source_arns" {
  description = "Source ARN of each invoke permission, keyed \"<function key> <METHOD/path suffix>\"."
  value       = { for k, p in aws_lambda_permission.this : k => p.source_arn }
}

output "log_group_name" {
  description = "Name of the access log group."
  value       = aws_cloudwatch_log_group.access.name
}
