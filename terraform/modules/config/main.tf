data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # Names and types are not secret; only the values are (var.parameters is sensitive as a whole).
  names          = nonsensitive(sort(keys(var.parameters)))
  types          = nonsensitive({ for name, p in var.parameters : name => p.type })
  secure         = contains(values(local.types), "SecureString")
  create_kms_key = local.secure && var.create_kms_key && var.kms_key_arn == null
  kms_key_arn    = !local.secure ? null : (var.kms_key_arn != null ? var.kms_key_arn : (local.create_kms_key ? aws_kms_key.this[0].arn : null))
}

# Key policy: the account administers and uses the key through IAM (the default key policy, written out).
# Functions get kms:Decrypt through SSM only from the function module's SsmDecrypt statement.
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
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "Nimbus config: SecureString parameters ${join(", ", [for n, t in local.types : n if t == "SecureString"])}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

resource "aws_ssm_parameter" "this" {
  for_each = toset(local.names)

  name        = each.key
  type        = local.types[each.key]
  value       = var.parameters[each.key].value
  description = var.parameters[each.key].description
  key_id      = local.types[each.key] == "SecureString" ? local.kms_key_arn : null
  tags        = var.tags
}
