# Mock apply: the outputs the function module consumes, known only after apply.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/created" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/shop-kv" }
  }
}

run "function_input_and_environment" {
  variables {
    name = "shop-kv"
  }

  assert {
    condition = output.function_input == {
      table_name  = "shop-kv"
      table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/shop-kv"
      kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/created"
    }
    error_message = "function_input carries the table and the created key for the function module."
  }
  assert {
    condition     = output.environment == { NIMBUS_KV_TABLE = "shop-kv" }
    error_message = "environment names the table for the runtime."
  }
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/created"
    error_message = "The table is encrypted with the created key."
  }
}
