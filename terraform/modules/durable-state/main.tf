data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  bucket_name = coalesce(var.bucket_name, "${var.name}-state-${local.account_id}-${data.aws_region.current.name}")

  # The key every resource is encrypted with, or null for the AWS-managed defaults.
  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : (var.create_kms_key ? aws_kms_key.this[0].arn : null)

  # AWS's recommendation for a queue behind an event source mapping: 6 x the function timeout (and SQS's 30 s).
  visibility_timeout_seconds = coalesce(var.visibility_timeout_seconds, max(30, 6 * var.function_timeout_seconds))
}

# ---------------------------------------------------------------------------------------------------------------
# KMS key
# ---------------------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null && var.create_kms_key ? 1 : 0

  statement {
    sid       = "EnableIamPolicies"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.kms_key_arn == null && var.create_kms_key ? 1 : 0

  description             = "Nimbus durable task state of ${var.name} (checkpoints, task records, continuations)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.kms_key_arn == null && var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}-durable-state"
  target_key_id = aws_kms_key.this[0].key_id
}

# ---------------------------------------------------------------------------------------------------------------
# Checkpoint bucket
# ---------------------------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logging needs a separate log bucket the caller owns; checkpoint objects are written only by the task function's role and object-level activity is available from CloudTrail data events.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice for the caller (it needs a second region's bucket and key); checkpoints are intermediate state that a task recomputes from its input.
  #checkov:skip=CKV2_AWS_62:Nothing consumes checkpoint events: the runtime reads checkpoints by key, continuations travel on the SQS queue.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = length(local.bucket_name) <= 63
      error_message = "The derived bucket name ${local.bucket_name} is longer than 63 characters; shorten name or set bucket_name."
    }
  }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = var.checkpoint_versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = local.kms_key_arn != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "tasks-superseded-checkpoints"
    status = "Enabled"

    filter {
      prefix = "tasks/"
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls" {
  count = var.enforce_tls ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyTlsBelow12"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls" {
  count = var.enforce_tls ? 1 : 0

  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.tls[0].json

  # The public access block must exist first (a Deny-only policy is not public, but the calls race otherwise).
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# ---------------------------------------------------------------------------------------------------------------
# Task table
# ---------------------------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "this" {
  name                        = "${var.name}-tasks"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "task_id"
  deletion_protection_enabled = var.deletion_protection
  tags                        = var.tags

  attribute {
    name = "task_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  # Always SSE-KMS: the module's (or the given) key, else DynamoDB's AWS-managed key (aws/dynamodb).
  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }

  # No ttl block: the runtime writes no expiry attribute; task records stay until deleted.
}

# ---------------------------------------------------------------------------------------------------------------
# Continuation queue and its dead-letter queue
# ---------------------------------------------------------------------------------------------------------------

resource "aws_sqs_queue" "dead_letter" {
  name                              = "${var.name}-tasks-dlq"
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  tags                              = var.tags
}

resource "aws_sqs_queue" "this" {
  name                              = "${var.name}-tasks"
  visibility_timeout_seconds        = local.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn == null ? null : 300
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  tags                              = var.tags

  lifecycle {
    # Owned by aws_sqs_queue_redrive_policy.this (moto re-serialises it with spaces: a perpetual diff inline).
    ignore_changes = [redrive_policy]

    precondition {
      condition     = local.visibility_timeout_seconds >= var.function_timeout_seconds + 3
      error_message = "visibility_timeout_seconds (${local.visibility_timeout_seconds}) must be at least function_timeout_seconds + 3 (${var.function_timeout_seconds + 3}): a continuation must not become visible again while its run can still be going."
    }
  }
}

resource "aws_sqs_queue_redrive_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
}
