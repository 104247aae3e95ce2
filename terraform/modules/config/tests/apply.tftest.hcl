# Mock apply: values only known after apply (the created key's ARN on the SecureStrings, the ARN map).

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
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:us-east-1:123456789012:parameter/mock" }
  }
}

run "secure_strings_use_the_created_key" {
  variables {
    parameters = {
      "/shop/db-url" = { type = "SecureString", value = "postgres://db/shop" }
      "/shop/name"   = { value = "shop" }
    }
  }

  assert {
    condition     = output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/created"
    error_message = "kms_key_arn is the created key."
  }
  assert {
    condition     = nonsensitive(aws_ssm_parameter.this["/shop/db-url"].key_id) == "arn:aws:kms:us-east-1:123456789012:key/created"
    error_message = "The SecureString is encrypted with the created key."
  }
  assert {
    condition     = keys(output.arns) == ["/shop/db-url", "/shop/name"] && output.arns["/shop/name"] == "arn:aws:ssm:us-east-1:123456789012:parameter/mock"
    error_message = "arns maps every name to its parameter's ARN."
  }
}
