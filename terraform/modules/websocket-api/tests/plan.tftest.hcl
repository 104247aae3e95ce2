# Plan-only runs: mocked ids and ARNs are known at plan (override_during = plan).
mock_provider "aws" {
  override_during = plan

  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      id            = "abc123"
      execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
      api_endpoint  = "wss://abc123.execute-api.us-east-1.amazonaws.com"
    }
  }
  mock_resource "aws_apigatewayv2_integration" {
    defaults = {
      id = "integ1"
    }
  }
  mock_resource "aws_apigatewayv2_authorizer" {
    defaults = {
      id = "auth01"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/chat/access"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
}

variables {
  name                       = "chat"
  function_name              = "app-chat"
  invoke_arn                 = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-chat/invocations"
  route_selection_expression = "$request.body.action"
  route_keys                 = ["$connect", "$disconnect", "$default", "join", "send", "leave"]
}

run "routes_integration_and_endpoints" {
  command = plan

  assert {
    condition     = aws_apigatewayv2_api.this.protocol_type == "WEBSOCKET" && aws_apigatewayv2_api.this.route_selection_expression == "$request.body.action"
    error_message = "A WebSocket API with the given route selection expression."
  }
  assert {
    condition     = toset(output.route_keys) == toset(var.route_keys) && length(output.route_keys) == 6
    error_message = "One route per route key, no more."
  }
  assert {
    condition     = aws_apigatewayv2_route.connect.route_key == "$connect" && alltrue([for k, r in aws_apigatewayv2_route.this : r.route_key == k])
    error_message = "Each route's route_key is its key."
  }
  assert {
    condition     = alltrue(concat([aws_apigatewayv2_route.connect.target == "integrations/${aws_apigatewayv2_integration.this.id}"], [for r in values(aws_apigatewayv2_route.this) : r.target == "integrations/${aws_apigatewayv2_integration.this.id}"]))
    error_message = "Every route targets the one integration."
  }
  assert {
    condition     = aws_apigatewayv2_integration.this.integration_type == "AWS_PROXY" && aws_apigatewayv2_integration.this.integration_uri == var.invoke_arn && aws_apigatewayv2_integration.this.integration_method == "POST"
    error_message = "One AWS_PROXY integration to the function."
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_route_response.this)) == toset(["$default", "join", "send", "leave"]) && alltrue([for r in values(aws_apigatewayv2_route_response.this) : r.route_response_key == "$default"])
    error_message = "Message routes are two-way (route response $default); $connect and $disconnect are not."
  }
  assert {
    condition     = aws_apigatewayv2_route.this["$disconnect"].route_response_selection_expression == null && aws_apigatewayv2_route.this["join"].route_response_selection_expression == "$default"
    error_message = "Route response selection only on two-way routes."
  }
  assert {
    condition     = aws_apigatewayv2_route.connect.authorization_type == "NONE" && length(aws_apigatewayv2_authorizer.connect) == 0 && length(aws_lambda_permission.authorizer) == 0
    error_message = "No authorizer by default."
  }
  assert {
    condition     = output.management_endpoint == "https://abc123.execute-api.us-east-1.amazonaws.com/live"
    error_message = "management_endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage}."
  }
  assert {
    condition = output.function_input == {
      execution_arn       = "arn:aws:execute-api:us-east-1:123456789012:abc123"
      stage_name          = "live"
      management_endpoint = "https://abc123.execute-api.us-east-1.amazonaws.com/live"
    }
    error_message = "function_input is what the function module's websocket_api takes."
  }
  assert {
    condition     = output.connections_arn == "arn:aws:execute-api:us-east-1:123456789012:abc123/live/*/@connections/*"
    error_message = "connections_arn covers the stage's @connections."
  }
  assert {
    condition     = aws_lambda_permission.this.source_arn == "arn:aws:execute-api:us-east-1:123456789012:abc123/live/*" && aws_lambda_permission.this.function_name == "app-chat" && aws_lambda_permission.this.principal == "apigateway.amazonaws.com"
    error_message = "The invoke permission is narrowed to this API's stage."
  }
}

run "stage_logs_and_throttling" {
  command = plan

  assert {
    condition     = aws_apigatewayv2_stage.this.name == "live" && aws_apigatewayv2_stage.this.auto_deploy
    error_message = "Stage live with auto_deploy by default."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.default_route_settings[0].throttling_burst_limit == 100 && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_rate_limit == 50
    error_message = "Default throttling is burst 100, rate 50."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.access.arn && jsondecode(aws_apigatewayv2_stage.this.access_log_settings[0].format).connectionId == "$context.connectionId"
    error_message = "JSON access logs with the connection id go to the module's log group."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 30 && aws_cloudwatch_log_group.access.kms_key_id == null
    error_message = "Log retention 30 days by default."
  }
}

run "settings_flow_through" {
  command = plan

  variables {
    route_selection_expression   = "$request.body.op"
    route_keys                   = ["$default", "$disconnect", "$connect"]
    stage_name                   = "prod"
    throttling_burst_limit       = 5
    throttling_rate_limit        = 2
    access_log_retention_in_days = 90
    access_log_kms_key_arn       = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    tags                         = { team = "nimbus" }
  }

  override_data {
    target = data.aws_region.current
    values = { name = "eu-west-1" }
  }

  assert {
    condition     = aws_apigatewayv2_api.this.route_selection_expression == "$request.body.op"
    error_message = "The selection expression comes from the input."
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_route.this)) == toset(["$default", "$disconnect"])
    error_message = "Only the three $ routes without custom keys."
  }
  assert {
    condition     = output.management_endpoint == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    error_message = "management_endpoint follows region and stage."
  }
  assert {
    condition     = aws_lambda_permission.this.source_arn == "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*"
    error_message = "The permission follows the stage."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.default_route_settings[0].throttling_burst_limit == 5 && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_rate_limit == 2
    error_message = "Throttling comes from the inputs."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 90 && aws_cloudwatch_log_group.access.kms_key_id == var.access_log_kms_key_arn
    error_message = "Log settings come from the inputs."
  }
  assert {
    condition     = aws_apigatewayv2_api.this.tags == tomap({ team = "nimbus" }) && aws_apigatewayv2_stage.this.tags == tomap({ team = "nimbus" }) && aws_cloudwatch_log_group.access.tags == tomap({ team = "nimbus" })
    error_message = "Tags go on every taggable resource."
  }
}

run "connect_authorizer" {
  command = plan

  variables {
    connect_authorizer = {
      function_name    = "app-auth"
      invoke_arn       = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-auth/invocations"
      identity_sources = ["route.request.querystring.token"]
    }
  }

  assert {
    condition     = aws_apigatewayv2_route.connect.authorization_type == "CUSTOM" && aws_apigatewayv2_route.connect.authorizer_id == "auth01"
    error_message = "$connect uses the authorizer."
  }
  assert {
    condition     = aws_apigatewayv2_authorizer.connect[0].authorizer_type == "REQUEST" && aws_apigatewayv2_authorizer.connect[0].identity_sources == toset(["route.request.querystring.token"])
    error_message = "A REQUEST authorizer with the identity sources."
  }
  assert {
    condition     = alltrue([for r in values(aws_apigatewayv2_route.this) : r.authorization_type == "NONE"])
    error_message = "Other routes take no authorizer."
  }
  assert {
    condition     = aws_lambda_permission.authorizer[0].function_name == "app-auth" && aws_lambda_permission.authorizer[0].source_arn == "arn:aws:execute-api:us-east-1:123456789012:abc123/authorizers/auth01"
    error_message = "API Gateway may invoke the authorizer, narrowed to it."
  }
}

run "missing_disconnect_fails" {
  command = plan

  variables {
    route_keys = ["$connect", "$default", "join"]
  }

  expect_failures = [var.route_keys]
}

run "empty_custom_key_fails" {
  command = plan

  variables {
    route_keys = ["$connect", "$disconnect", "$default", " "]
  }

  expect_failures = [var.route_keys]
}

run "repeated_key_fails" {
  command = plan

  variables {
    route_keys = ["$connect", "$disconnect", "$default", "join", "join"]
  }

  expect_failures = [var.route_keys]
}

run "unknown_dollar_key_fails" {
  command = plan

  variables {
    route_keys = ["$connect", "$disconnect", "$default", "$join"]
  }

  expect_failures = [var.route_keys]
}

run "default_stage_name_fails" {
  command = plan

  variables {
    stage_name = "$default"
  }

  expect_failures = [var.stage_name]
}
