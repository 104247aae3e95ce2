# Plan-only runs: mocked ARNs are known at plan (override_during = plan), so source ARNs can be asserted.
mock_provider "aws" {
  override_during = plan

  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      id            = "abc123"
      execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
      api_endpoint  = "https://abc123.execute-api.us-east-1.amazonaws.com"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/app/access"
    }
  }
}

variables {
  name = "app"
  functions = {
    hello = {
      function_name = "app-hello"
      invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-hello/invocations"
      routes        = ["GET /hello", "ANY /items/{id}", "GET /"]
    }
    task = {
      function_name = "app-sha-task"
      invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-sha-task/invocations"
      routes        = ["POST /tasks/sha-task", "GET /tasks/sha-task/{id}"]
    }
  }
}

run "every_declared_route_by_default" {
  command = plan

  assert {
    condition     = output.route_keys == sort(["GET /hello", "ANY /items/{id}", "GET /", "POST /tasks/sha-task", "GET /tasks/sha-task/{id}"])
    error_message = "The routes created must be exactly the declared ones."
  }
  assert {
    condition     = alltrue([for k, r in aws_apigatewayv2_route.this : r.route_key == k])
    error_message = "Each route's route_key must be its declared key."
  }
  assert {
    condition     = !contains(keys(aws_apigatewayv2_route.this), "$default")
    error_message = "No $default route without a catch_all function."
  }
  assert {
    condition     = output.routes == { "GET /hello" = "hello", "ANY /items/{id}" = "hello", "GET /" = "hello", "POST /tasks/sha-task" = "task", "GET /tasks/sha-task/{id}" = "task" }
    error_message = "Each route must target its own function."
  }
  assert {
    condition     = length(aws_apigatewayv2_integration.this) == 2
    error_message = "One integration per function."
  }
  assert {
    condition = alltrue([
      for i in values(aws_apigatewayv2_integration.this) :
      i.integration_type == "AWS_PROXY" && i.payload_format_version == "2.0" && i.integration_method == "POST"
    ])
    error_message = "Integrations must be AWS_PROXY, payload format 2.0, POST."
  }
  assert {
    condition     = aws_apigatewayv2_integration.this["task"].integration_uri == var.functions.task.invoke_arn
    error_message = "An integration must invoke its function."
  }
  assert {
    condition = output.permission_source_arns == {
      "hello GET/hello"           = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/hello"
      "hello */items/*"           = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/*/items/*"
      "hello GET/"                = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/"
      "task POST/tasks/sha-task"  = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/tasks/sha-task"
      "task GET/tasks/sha-task/*" = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/tasks/sha-task/*"
    }
    error_message = "Each permission's source ARN must be narrowed to one route."
  }
  assert {
    condition     = alltrue([for p in values(aws_lambda_permission.this) : !endswith(p.source_arn, "/*/*") && !endswith(p.source_arn, "/$default")])
    error_message = "No permission may allow every route without a catch_all function."
  }
  assert {
    condition = alltrue([
      for k, p in aws_lambda_permission.this :
      p.principal == "apigateway.amazonaws.com" && p.action == "lambda:InvokeFunction" &&
      p.function_name == (startswith(k, "task ") ? "app-sha-task" : "app-hello")
    ])
    error_message = "Permissions must let API Gateway invoke exactly the route's function."
  }
  assert {
    condition     = length(distinct([for p in values(aws_lambda_permission.this) : p.statement_id])) == 5
    error_message = "Statement ids must be distinct."
  }
}

run "stage_logs_and_throttling" {
  command = plan

  assert {
    condition     = aws_apigatewayv2_stage.this.name == "$default" && aws_apigatewayv2_stage.this.auto_deploy
    error_message = "The default stage is $default with auto_deploy."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.default_route_settings[0].throttling_burst_limit == 100 && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_rate_limit == 50
    error_message = "Default throttling is burst 100, rate 50."
  }
  assert {
    condition     = aws_apigatewayv2_stage.this.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.access.arn
    error_message = "Access logs go to the module's log group."
  }
  assert {
    condition     = jsondecode(aws_apigatewayv2_stage.this.access_log_settings[0].format).requestId == "$context.requestId" && jsondecode(aws_apigatewayv2_stage.this.access_log_settings[0].format).routeKey == "$context.routeKey"
    error_message = "The access log format is JSON with the request id and route key."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 30 && aws_cloudwatch_log_group.access.kms_key_id == null
    error_message = "Log retention defaults to 30 days, no customer key."
  }
  assert {
    condition     = aws_apigatewayv2_api.this.protocol_type == "HTTP" && length(aws_apigatewayv2_api.this.cors_configuration) == 0
    error_message = "An HTTP API without CORS by default."
  }
  assert {
    condition     = alltrue([for r in values(aws_apigatewayv2_route.this) : r.authorization_type == "NONE"])
    error_message = "Routes are public by default."
  }
}

run "settings_flow_through" {
  command = plan

  variables {
    stage_name                   = "prod"
    throttling_burst_limit       = 7
    throttling_rate_limit        = 3
    access_log_retention_in_days = 365
    access_log_kms_key_arn       = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    authorization_type           = "AWS_IAM"
    cors_configuration           = { allow_origins = ["https://example.com"], allow_methods = ["GET"], max_age = 600 }
    tags                         = { team = "nimbus" }
  }

  assert {
    condition     = aws_apigatewayv2_stage.this.name == "prod" && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_burst_limit == 7 && aws_apigatewayv2_stage.this.default_route_settings[0].throttling_rate_limit == 3
    error_message = "Stage name and throttling come from the inputs."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 365 && aws_cloudwatch_log_group.access.kms_key_id == var.access_log_kms_key_arn
    error_message = "Log retention and key come from the inputs."
  }
  assert {
    condition     = aws_apigatewayv2_api.this.cors_configuration[0].allow_origins == toset(["https://example.com"]) && aws_apigatewayv2_api.this.cors_configuration[0].max_age == 600
    error_message = "CORS comes from the input."
  }
  assert {
    condition     = alltrue([for r in values(aws_apigatewayv2_route.this) : r.authorization_type == "AWS_IAM"])
    error_message = "authorization_type applies to every route."
  }
  assert {
    condition     = aws_apigatewayv2_api.this.tags == tomap({ team = "nimbus" }) && aws_apigatewayv2_stage.this.tags == tomap({ team = "nimbus" }) && aws_cloudwatch_log_group.access.tags == tomap({ team = "nimbus" })
    error_message = "Tags go on every taggable resource."
  }
  assert {
    condition     = output.permission_source_arns["hello GET/hello"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/hello"
    error_message = "Source ARNs do not depend on the stage."
  }
}

run "catch_all_gets_default_route" {
  command = plan

  variables {
    functions = {
      web = {
        function_name = "app-web"
        invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-web/invocations"
        routes        = ["GET /web"]
        catch_all     = true
      }
      hello = {
        function_name = "app-hello"
        invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-hello/invocations"
        routes        = ["GET /hello"]
      }
    }
  }

  assert {
    condition     = output.route_keys == tolist(["$default", "GET /hello", "GET /web"])
    error_message = "The catch_all function adds the $default route."
  }
  assert {
    condition     = output.routes["$default"] == "web"
    error_message = "$default targets the catch_all function."
  }
  assert {
    condition     = output.permission_source_arns["web $default"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/*/$default"
    error_message = "The catch-all permission is narrowed to the $default route."
  }
  assert {
    condition     = length([for k in keys(output.permission_source_arns) : k if startswith(k, "hello ")]) == 1
    error_message = "The other function only gets its own route."
  }
}

run "subset_of_routes" {
  command = plan

  variables {
    routes = ["GET /hello", "GET /hello"]
  }

  assert {
    condition     = output.route_keys == tolist(["GET /hello"])
    error_message = "Only the selected routes are created (duplicates collapse)."
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_integration.this)) == toset(["hello"])
    error_message = "Functions without a selected route get no integration."
  }
  assert {
    condition     = toset(keys(output.permission_source_arns)) == toset(["hello GET/hello"])
    error_message = "Only the selected routes get permissions."
  }
}

run "undeclared_route_fails" {
  command = plan

  variables {
    routes = ["GET /hello", "DELETE /nope"]
  }

  expect_failures = [aws_apigatewayv2_api.this]
}

run "default_route_without_catch_all_fails" {
  command = plan

  variables {
    routes = ["$default"]
  }

  expect_failures = [aws_apigatewayv2_api.this]
}

run "empty_routes_fails" {
  command = plan

  variables {
    routes = []
  }

  expect_failures = [aws_apigatewayv2_api.this]
}

run "two_catch_alls_fail" {
  command = plan

  variables {
    functions = {
      a = { function_name = "a", invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/x", routes = [], catch_all = true }
      b = { function_name = "b", invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/y", routes = [], catch_all = true }
    }
  }

  expect_failures = [var.functions]
}

run "route_declared_twice_fails" {
  command = plan

  variables {
    functions = {
      a = { function_name = "a", invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/x", routes = ["GET /x"] }
      b = { function_name = "b", invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/y", routes = ["GET /x"] }
    }
  }

  expect_failures = [var.functions]
}

run "malformed_route_key_fails" {
  command = plan

  variables {
    functions = {
      a = { function_name = "a", invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/x", routes = ["FETCH /x"] }
    }
  }

  expect_failures = [var.functions]
}
