output "api_id" {
  description = "ID of the WebSocket API."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "Base URL of the API (wss://{api-id}.execute-api.{region}.amazonaws.com)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "execution_arn" {
  description = "Execution ARN of the API."
  value       = aws_apigatewayv2_api.this.execution_arn
}

output "stage_name" {
  description = "Name of the stage."
  value       = aws_apigatewayv2_stage.this.name
}

output "invoke_url" {
  description = "URL clients connect to (wss://{api-id}.execute-api.{region}.amazonaws.com/{stage})."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "route_keys" {
  description = "Route keys created (sorted)."
  value       = sort(concat(["$connect"], keys(aws_apigatewayv2_route.this)))
}

output "management_endpoint" {
  description = "API Gateway Management API endpoint of the stage (NIMBUS_WEBSOCKET_ENDPOINT): https://{api-id}.execute-api.{region}.amazonaws.com/{stage}."
  value       = local.management_endpoint
}

output "connections_arn" {
  description = "ARN pattern of the stage's connections for execute-api:ManageConnections (every method): {execution_arn}/{stage}/*/@connections/*. The function module grants only POST and DELETE."
  value       = "${aws_apigatewayv2_api.this.execution_arn}/${var.stage_name}/*/@connections/*"
}

output "log_group_name" {
  description = "Name of the access log group."
  value       = aws_cloudwatch_log_group.access.name
}

output "function_input" {
  description = "The object the function module's websocket_api input takes."
  value = {
    execution_arn       = aws_apigatewayv2_api.this.execution_arn
    stage_name          = var.stage_name # not the stage resource: see local.management_endpoint
    management_endpoint = local.management_endpoint
  }
}
