data "aws_region" "current" {}

locals {
  # Routes other than $connect / $disconnect answer the client with the function's reply (two-way routes).
  two_way_route_keys = [for k in var.route_keys : k if !contains(["$connect", "$disconnect"], k)]
  other_route_keys   = [for k in var.route_keys : k if k != "$connect"]

  # From the API and var.stage_name, not from the stage resource: the function module consumes these values
  # (NIMBUS_WEBSOCKET_ENDPOINT, ManageConnections) while the stage depends on the function (routes ->
  # integration -> invoke_arn); going through the stage would be a dependency cycle.
  management_endpoint = "https://${aws_apigatewayv2_api.this.id}.execute-api.${data.aws_region.current.name}.amazonaws.com/${var.stage_name}"

  access_log_format = jsonencode({
    requestId          = "$context.requestId"
    extendedRequestId  = "$context.extendedRequestId"
    requestTime        = "$context.requestTime"
    requestTimeEpoch   = "$context.requestTimeEpoch"
    ip                 = "$context.identity.sourceIp"
    userAgent          = "$context.identity.userAgent"
    connectionId       = "$context.connectionId"
    eventType          = "$context.eventType"
    routeKey           = "$context.routeKey"
    messageId          = "$context.messageId"
    stage              = "$context.stage"
    status             = "$context.status"
    integrationStatus  = "$context.integrationStatus"
    integrationLatency = "$context.integrationLatency"
    integrationError   = "$context.integrationErrorMessage"
    errorMessage       = "$context.error.message"
    authorizerError    = "$context.authorizer.error"
  })
}

resource "aws_apigatewayv2_api" "this" {
  name                       = var.name
  protocol_type              = "WEBSOCKET"
  route_selection_expression = var.route_selection_expression
  tags                       = var.tags
}

resource "aws_apigatewayv2_integration" "this" {
  api_id             = aws_apigatewayv2_api.this.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = var.invoke_arn
  description        = "Lambda function ${var.function_name}"
}

resource "aws_apigatewayv2_authorizer" "connect" {
  count = var.connect_authorizer == null ? 0 : 1

  api_id           = aws_apigatewayv2_api.this.id
  name             = "${var.name}-connect"
  authorizer_type  = "REQUEST"
  authorizer_uri   = var.connect_authorizer.invoke_arn
  identity_sources = var.connect_authorizer.identity_sources
}

resource "aws_apigatewayv2_route" "connect" {
  #checkov:skip=CKV_AWS_309:Authorization is optional by design: without connect_authorizer the function's own on_connect authenticates the upgrade and refuses it with a 4xx (see README); set connect_authorizer for a Lambda REQUEST authorizer.
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "$connect"
  target             = "integrations/${aws_apigatewayv2_integration.this.id}"
  authorization_type = var.connect_authorizer == null ? "NONE" : "CUSTOM"
  authorizer_id      = var.connect_authorizer == null ? null : aws_apigatewayv2_authorizer.connect[0].id
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:API Gateway accepts an authorizer only on the $connect route of a WebSocket API; $disconnect, $default and custom routes run on a connection that $connect already authorized.
  for_each = toset(local.other_route_keys)

  api_id                              = aws_apigatewayv2_api.this.id
  route_key                           = each.key
  target                              = "integrations/${aws_apigatewayv2_integration.this.id}"
  authorization_type                  = "NONE"
  route_response_selection_expression = contains(local.two_way_route_keys, each.key) ? "$default" : null
}

# A route response makes the route two-way: the function's reply (its `body`) goes back to the sender.
resource "aws_apigatewayv2_route_response" "this" {
  for_each = toset(local.two_way_route_keys)

  api_id             = aws_apigatewayv2_api.this.id
  route_id           = aws_apigatewayv2_route.this[each.key].id
  route_response_key = "$default"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is an input (access_log_retention_in_days, default 30 days per the module contract); a year of access logs is the caller's choice, not a default.
  #checkov:skip=CKV_AWS_158:Log groups are always encrypted at rest by CloudWatch Logs; a customer-managed key is optional (access_log_kms_key_arn) because its key policy must be written for the logs service by the caller.
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.access_log_retention_in_days
  kms_key_id        = var.access_log_kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  #checkov:skip=CKV2_AWS_51:A stage client certificate authenticates API Gateway to HTTP backends; this API's only integration is a Lambda function (AWS_PROXY), which API Gateway calls with IAM, so there is no backend to present it to.
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.stage_name
  auto_deploy = true
  tags        = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  depends_on = [aws_apigatewayv2_route.connect, aws_apigatewayv2_route.this, aws_apigatewayv2_route_response.this]
}

resource "aws_lambda_permission" "this" {
  statement_id  = "nimbus-websocket-${substr(sha1(var.name), 0, 24)}"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${aws_apigatewayv2_stage.this.name}/*"
}

resource "aws_lambda_permission" "authorizer" {
  count = var.connect_authorizer == null ? 0 : 1

  statement_id  = "nimbus-websocket-authorizer-${substr(sha1(var.name), 0, 24)}"
  action        = "lambda:InvokeFunction"
  function_name = var.connect_authorizer.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.connect[0].id}"
}
