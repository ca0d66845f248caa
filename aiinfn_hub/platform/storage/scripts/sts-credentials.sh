# AWS "credential_process": exchange the user's IAM token (a file the hub keeps fresh) for
# temporary S3 credentials with STS AssumeRoleWithWebIdentity, as JSON for the AWS SDK in
# rclone. The SDK runs it again before the credentials expire, so a renewed token is picked up.
# The token is sent in the POST body only; nothing secret is printed to stderr or logs.
set -eu
token_file=${AIINFN_TOKEN_FILE:?}
if [ ! -s "$token_file" ]; then
  echo "no IAM token in $token_file" >&2
  exit 1
fi
body="Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=${AIINFN_STS_DURATION:-3600}"
body="$body&RoleArn=${AIINFN_ROLE_ARN:?}&RoleSessionName=${AIINFN_SESSION_NAME:?}"
body="$body&WebIdentityToken=$(cat "$token_file")"
# the body goes through a private file (wget needs a seekable one), never the command line
umask 077
request=$(mktemp)
trap 'rm -f "$request"' EXIT
printf '%s' "$body" > "$request"
if ! answer=$(wget -q -O - --post-file="$request" "${AIINFN_STS_ENDPOINT:?}" 2>/dev/null); then
  echo "the STS endpoint ${AIINFN_STS_ENDPOINT} refused the IAM token or cannot be reached" >&2
  exit 1
fi
field() { printf '%s' "$answer" | sed -n "s:.*<$1>\([^<]*\)</$1>.*:\1:p"; }
key=$(field AccessKeyId)
if [ -z "$key" ]; then
  echo "the STS endpoint answered without credentials" >&2
  exit 1
fi
printf '{"Version":1,"AccessKeyId":"%s","SecretAccessKey":"%s","SessionToken":"%s","Expiration":"%s"}\n' \
  "$key" "$(field SecretAccessKey)" "$(field SessionToken)" "$(field Expiration)"
