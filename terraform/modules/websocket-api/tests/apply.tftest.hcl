# A mocked apply (no override_during: that breaks apply runs; see shared/facts/terraform-on-moto.md).
mock_provider "aws" {
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
      api_endpoint  = "wss://abc123.execute-api.us-east-1.amazonaws.com"
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

run "apply" {
  variables {
    name          = "chat"
    function_name = "app-chat"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:app-chat/invocations"
    route_keys    = ["$connect", "$disconnect", "$default", "join"]
  }

  assert {
    condition     = output.management_endpoint == "https://${output.api_id}.execute-api.us-east-1.amazonaws.com/live"
    error_message = "management_endpoint after apply."
  }
  assert {
    condition     = output.function_input.management_endpoint == output.management_endpoint && output.function_input.stage_name == "live" && output.function_input.execution_arn == output.execution_arn
    error_message = "function_input after apply."
  }
  assert {
    condition     = output.route_keys == tolist(["$connect", "$default", "$disconnect", "join"])
    error_message = "Routes after apply."
  }
}
