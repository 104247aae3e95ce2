# A mocked apply (no override_during: that breaks apply runs; see shared/facts/terraform-on-moto.md).
mock_provider "aws" {
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
      api_endpoint  = "https://abc123.execute-api.us-east-1.amazonaws.com"
    }
  }
  mock_resource "aws_apigatewayv2_stage" {
    defaults = {
      invoke_url = "https://abc123.execute-api.us-east-1.amazonaws.com/"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/app/access"
    }
  }
}

run "apply" {
  variables {
    name = "app"
    functions = {
      task = {
        function_name = "app-sha-task"
        invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-sha-task/invocations"
        routes        = ["POST /tasks/sha-task", "GET /tasks/sha-task/{id}"]
        catch_all     = true
      }
    }
  }

  assert {
    condition     = output.route_keys == tolist(["$default", "GET /tasks/sha-task/{id}", "POST /tasks/sha-task"])
    error_message = "Routes after apply."
  }
  assert {
    condition     = output.execution_arn == "arn:aws:execute-api:us-east-1:123456789012:abc123" && output.invoke_url == "https://abc123.execute-api.us-east-1.amazonaws.com/"
    error_message = "Outputs after apply."
  }
  assert {
    condition     = sort(values(output.permission_source_arns)) == sort(["arn:aws:execute-api:us-east-1:123456789012:abc123/*/$default", "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/tasks/sha-task", "arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/tasks/sha-task/*"])
    error_message = "Permissions after apply."
  }
  assert {
    condition     = output.log_group_name == "/aws/apigateway/app/access" && output.stage_name == "$default"
    error_message = "Log group and stage names."
  }
}
