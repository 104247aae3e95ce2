# Plan-only, real provider offline (identity data sources overridden): the key policy is rendered, so the
# assertions read the JSON KMS would get.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/terraform", user_id = "AIDAEXAMPLE" }
}

override_data {
  target = data.aws_partition.current
  values = { partition = "aws", dns_suffix = "amazonaws.com" }
}

run "secure_string_gets_a_rotating_key_owned_by_the_account" {
  command = plan

  variables {
    parameters = {
      "/shop/db-url" = { type = "SecureString", value = "postgres://db/shop", description = "database" }
      "/shop/hosts"  = { type = "StringList", value = "a.local,b.local" }
      "/shop/name"   = { value = "shop" }
    }
    tags = { app = "shop" }
  }

  assert {
    condition     = length(aws_kms_key.this) == 1 && aws_kms_key.this[0].enable_key_rotation && aws_kms_key.this[0].tags == tomap({ app = "shop" })
    error_message = "A SecureString gets a created KMS key with rotation, tagged."
  }
  assert {
    condition = jsonencode(jsondecode(data.aws_iam_policy_document.kms[0].json).Statement) == jsonencode([{
      Sid       = "AccountAdministersThroughIam"
      Effect    = "Allow"
      Action    = "kms:*"
      Resource  = "*"
      Principal = { AWS = "arn:aws:iam::123456789012:root" }
    }])
    error_message = "The key policy is explicit: the account root only (IAM delegation), no other principal."
  }
  assert {
    condition     = output.names == tolist(["/shop/db-url", "/shop/hosts", "/shop/name"])
    error_message = "names is the sorted list of parameter names."
  }
  assert {
    condition     = nonsensitive(aws_ssm_parameter.this["/shop/hosts"].type) == "StringList" && nonsensitive(aws_ssm_parameter.this["/shop/name"].type) == "String"
    error_message = "Types pass through; String is the default."
  }
  assert {
    condition     = aws_ssm_parameter.this["/shop/db-url"].description == "database" && aws_ssm_parameter.this["/shop/name"].tags == tomap({ app = "shop" })
    error_message = "Descriptions and tags are set."
  }
}

run "no_secure_string_no_key" {
  command = plan

  variables {
    parameters = { "/shop/name" = { value = "shop" } }
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && output.kms_key_arn == null
    error_message = "Without a SecureString no key is created and kms_key_arn is null."
  }
}

run "existing_key_is_used" {
  command = plan

  variables {
    parameters  = { "/shop/token" = { type = "SecureString", value = "s3cr3t" } }
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/existing"
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/existing"
    error_message = "A given key is used, none is created."
  }
  assert {
    condition     = nonsensitive(aws_ssm_parameter.this["/shop/token"].key_id) == "arn:aws:kms:us-east-1:123456789012:key/existing"
    error_message = "SecureStrings are encrypted with the given key."
  }
}

run "aws_managed_key_when_asked" {
  command = plan

  variables {
    parameters     = { "/shop/token" = { type = "SecureString", value = "s3cr3t" } }
    create_kms_key = false
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && output.kms_key_arn == null
    error_message = "create_kms_key = false without kms_key_arn: no key, SSM's aws/ssm key."
  }
}

run "name_without_leading_slash" {
  command = plan

  variables {
    parameters = { "shop/name" = { value = "shop" } }
  }

  expect_failures = [var.parameters]
}

run "name_with_trailing_slash" {
  command = plan

  variables {
    parameters = { "/shop/db/" = { value = "x" } }
  }

  expect_failures = [var.parameters]
}

run "reserved_name" {
  command = plan

  variables {
    parameters = { "/aws/reference/x" = { value = "x" } }
  }

  expect_failures = [var.parameters]
}

run "unknown_type" {
  command = plan

  variables {
    parameters = { "/shop/name" = { type = "Secret", value = "x" } }
  }

  expect_failures = [var.parameters]
}

run "empty_value" {
  command = plan

  variables {
    parameters = { "/shop/name" = { value = "" } }
  }

  expect_failures = [var.parameters]
}
