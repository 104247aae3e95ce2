data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  create_kms_key = var.create_kms_key && var.kms_key_arn == null
  kms_key_arn    = var.kms_key_arn != null ? var.kms_key_arn : (local.create_kms_key ? aws_kms_key.this[0].arn : null)
}

# Key policy: the account administers and uses the key through IAM (the default key policy, written out);
# DynamoDB may describe it, so it can report the key's state. Functions get Decrypt/GenerateDataKey through
# DynamoDB only from the function module's KeyValueKey statement.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:Key policy, not an identity policy: "*" is this key only, and the principal is the account root (AWS's default key policy, delegating to IAM)
  #checkov:skip=CKV_AWS_111:Key policy, not an identity policy: "*" is this key only, and the principal is the account root (AWS's default key policy, delegating to IAM)
  #checkov:skip=CKV_AWS_356:Key policy, not an identity policy: "*" is this key only, and the principal is the account root (AWS's default key policy, delegating to IAM)
  count = local.create_kms_key ? 1 : 0

  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "DynamoDbDescribesKey"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["dynamodb.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "Nimbus key-value table ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

# wasi:keyvalue buckets: partition key = bucket name (so IAM can scope a function to its buckets with
# dynamodb:LeadingKeys), sort key = the key, value in the binary attribute `v`. No TTL.
resource "aws_dynamodb_table" "this" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "bucket"
  range_key                   = "key"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "bucket"
    type = "S"
  }

  attribute {
    name = "key"
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }

  tags = var.tags
}
