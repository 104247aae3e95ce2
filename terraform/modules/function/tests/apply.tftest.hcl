# Mock apply (no AWS, no moto): the whole module goes through create with mocked resources, checking what is
# only known after apply (outputs, counts of optional resources). The policy's rendered JSON is covered by
# policy.tftest.hcl; here the policy document is mocked (a valid empty policy).

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/mock" }
  }
  mock_resource "aws_lambda_layer_version" {
    defaults = {
      arn                         = "arn:aws:lambda:us-east-1:123456789012:layer:mock-runtime:1"
      layer_arn                   = "arn:aws:lambda:us-east-1:123456789012:layer:mock-runtime"
      signing_job_arn             = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/mock"
      signing_profile_version_arn = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/mock/1"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn                         = "arn:aws:lambda:us-east-1:123456789012:function:mock"
      invoke_arn                  = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock/invocations"
      qualified_arn               = "arn:aws:lambda:us-east-1:123456789012:function:mock:$LATEST"
      qualified_invoke_arn        = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock:$LATEST/invocations"
      signing_job_arn             = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/mock"
      signing_profile_version_arn = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/mock/1"
    }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://mock.lambda-url.us-east-1.on.aws/" }
  }
  mock_resource "aws_lambda_event_source_mapping" {
    defaults = {
      uuid         = "00000000-1111-2222-3333-444444444444"
      function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mock"
      arn          = "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:00000000-1111-2222-3333-444444444444"
    }
  }
}

run "task_function_with_url_and_layer" {
  variables {
    description_file    = "tests/fixtures/sha-task.json"
    package_type        = "layer"
    create_function_url = true
    tags                = { app = "fixtures" }
    durable_state = {
      bucket_name = "fixtures-state"
      bucket_arn  = "arn:aws:s3:::fixtures-state"
      table_name  = "fixtures-tasks"
      table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/fixtures-tasks"
      queue_url   = "https://sqs.us-east-1.amazonaws.com/123456789012/fixtures-sha-task"
      queue_arn   = "arn:aws:sqs:us-east-1:123456789012:fixtures-sha-task"
    }
  }

  assert {
    condition     = output.event_source_mapping_uuid == "00000000-1111-2222-3333-444444444444"
    error_message = "A task function reports its mapping's UUID."
  }
  assert {
    condition     = output.function_url == "https://mock.lambda-url.us-east-1.on.aws/" && aws_lambda_function_url.this[0].authorization_type == "AWS_IAM"
    error_message = "create_function_url creates an AWS_IAM Function URL by default."
  }
  assert {
    condition     = output.layer_arn == "arn:aws:lambda:us-east-1:123456789012:layer:mock-runtime:1" && aws_lambda_function.this.layers == tolist([output.layer_arn])
    error_message = "The created layer is used and reported."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.this[0].tags == tomap({ app = "fixtures" })
    error_message = "The mapping is tagged."
  }
  assert {
    condition = (output.function_arn == "arn:aws:lambda:us-east-1:123456789012:function:mock" &&
      output.role_arn == "arn:aws:iam::123456789012:role/mock" && output.role_name == "fixtures-sha-task" &&
    output.log_group_name == "/aws/lambda/fixtures-sha-task" && output.kind == "task")
    error_message = "Outputs come from the resources."
  }
  assert {
    condition     = output.description.task.max_attempts == 3 && output.routes == ["POST /tasks/sha-task", "GET /tasks/sha-task/{id}"]
    error_message = "The decoded description and its routes are outputs."
  }
}

run "http_function_without_optional_resources" {
  variables {
    description_file       = "tests/fixtures/hello.json"
    logging_config_enabled = false
  }

  assert {
    condition     = output.event_source_mapping_uuid == null && output.function_url == null && output.layer_arn == null
    error_message = "No mapping, URL or layer: their outputs are null."
  }
  assert {
    condition     = length(aws_lambda_function.this.logging_config) == 0
    error_message = "logging_config_enabled = false drops the logging_config block."
  }
}
