# A mocked apply (no override_during: that breaks apply runs; see shared/facts/terraform-on-moto.md).
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::app-sha-task-state-123456789012-us-east-1" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/app-sha-task-tasks" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
    }
  }
}

run "apply" {
  variables {
    name                     = "app-sha-task"
    function_timeout_seconds = 900
  }

  assert {
    condition     = output.visibility_timeout_seconds == 5400
    error_message = "Visibility timeout = 6 x 900 s."
  }
  assert {
    condition     = toset(keys(output.environment)) == toset(["NIMBUS_STATE_BUCKET", "NIMBUS_TASK_TABLE", "NIMBUS_TASK_QUEUE_URL"])
    error_message = "Exactly the three NIMBUS_* variables."
  }
  assert {
    condition     = output.environment.NIMBUS_STATE_BUCKET == output.bucket_name && output.environment.NIMBUS_TASK_TABLE == output.table_name && output.environment.NIMBUS_TASK_QUEUE_URL == output.queue_url
    error_message = "environment matches the other outputs."
  }
  assert {
    condition     = output.function_input.queue_arn == output.queue_arn && output.function_input.kms_key_arn == output.kms_key_arn && output.kms_key_arn != null
    error_message = "function_input after apply."
  }
}
