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

run "table_layout_the_runtime_reads" {
  command = plan

  variables {
    name = "shop-kv"
    tags = { app = "shop" }
  }

  assert {
    condition = (aws_dynamodb_table.this.name == "shop-kv" && aws_dynamodb_table.this.hash_key == "bucket" &&
      aws_dynamodb_table.this.range_key == "key" && aws_dynamodb_table.this.billing_mode == "PAY_PER_REQUEST" &&
    aws_dynamodb_table.this.attribute == toset([{ name = "bucket", type = "S" }, { name = "key", type = "S" }]))
    error_message = "Partition key bucket (S), sort key key (S), on demand."
  }
  assert {
    condition     = aws_dynamodb_table.this.point_in_time_recovery[0].enabled && !aws_dynamodb_table.this.deletion_protection_enabled
    error_message = "PITR on, deletion protection off by default."
  }
  assert {
    condition     = length(aws_kms_key.this) == 1 && aws_kms_key.this[0].enable_key_rotation && aws_dynamodb_table.this.server_side_encryption[0].enabled
    error_message = "A rotating customer managed key is created and the table is encrypted."
  }
  assert {
    condition = jsonencode(jsondecode(data.aws_iam_policy_document.kms[0].json).Statement) == jsonencode([
      {
        Sid       = "AccountAdministersThroughIam"
        Effect    = "Allow"
        Action    = "kms:*"
        Resource  = "*"
        Principal = { AWS = "arn:aws:iam::123456789012:root" }
      },
      {
        Sid       = "DynamoDbDescribesKey"
        Effect    = "Allow"
        Action    = "kms:DescribeKey"
        Resource  = "*"
        Principal = { Service = "dynamodb.amazonaws.com" }
      },
    ])
    error_message = "The key policy is explicit: the account root (IAM delegation) and DynamoDB describing the key."
  }
  assert {
    condition     = aws_dynamodb_table.this.tags == tomap({ app = "shop" }) && aws_kms_key.this[0].tags == tomap({ app = "shop" })
    error_message = "Tags go on the table and the key."
  }
}

run "existing_key_and_options" {
  command = plan

  variables {
    name                   = "shop-kv"
    kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/existing"
    point_in_time_recovery = false
    deletion_protection    = true
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/existing"
    error_message = "A given key is used, none is created."
  }
  assert {
    condition     = output.function_input.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/existing" && output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/existing"
    error_message = "The given key is reported to the function module."
  }
  assert {
    condition     = !aws_dynamodb_table.this.point_in_time_recovery[0].enabled && aws_dynamodb_table.this.deletion_protection_enabled
    error_message = "PITR and deletion protection follow the inputs."
  }
}

run "aws_managed_key_when_asked" {
  command = plan

  variables {
    name           = "shop-kv"
    create_kms_key = false
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && output.kms_key_arn == null && aws_dynamodb_table.this.server_side_encryption[0].enabled
    error_message = "create_kms_key = false: no key created, the table still encrypted (aws/dynamodb)."
  }
}

run "invalid_table_name" {
  command = plan

  variables {
    name = "shop kv"
  }

  expect_failures = [var.name]
}
