#!/usr/bin/env bash
# One signed webhook per channel, as each provider sends it, to a running gateway:
#
#   omniroute gateway --config examples/gateway.toml --embedded gateway.olog &
#   bash examples/webhooks.sh                    # GATEWAY=http://host:port to change it
#   omniroute project gateway.olog --db gateway.duckdb && omniroute report --db gateway.duckdb
#
# Needs curl and openssl. The secrets are those of examples/gateway.toml. Each request
# prints the gateway's answer and the HTTP status; run it twice and nothing is added
# (every provider's message id is the event id: a retry is never a second contact).
set -euo pipefail
GW="${GATEWAY:-http://127.0.0.1:8080}"
NOW=$(date +%s)

hex_hmac() { openssl dgst -sha256 -hmac "$1" | sed 's/^.* //'; }        # key; stdin
b64_hmac() { openssl dgst "$1" -hmac "$2" -binary | base64; }           # sha1|sha256 key
post() { curl -sS -w ' %{http_code}\n' -X POST "$GW$1" "${@:2}"; }

meta() {  # provider body: Meta signs the raw body with the app secret
  local secret="$3"
  post "/webhooks/$1/main" -H 'Content-Type: application/json' \
    -H "X-Hub-Signature-256: sha256=$(printf '%s' "$2" | hex_hmac "$secret")" --data-raw "$2"
}

echo "# WhatsApp Cloud API: a text message"
meta whatsapp '{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kim Lee"},"wa_id":"447700900123"}],"messages":[{"from":"447700900123","id":"wamid.HBgLNDQ3NzAwOTAwMTIzFQIAEhgg","timestamp":"'"$NOW"'","type":"text","text":{"body":"Hi, I need a refund for my last invoice"}}]}}]}]}' whatsapp-app-secret

echo "# Messenger: a text message to our page"
meta messenger '{"object":"page","entry":[{"id":"682498302938465","time":'"$NOW"'000,"messaging":[{"sender":{"id":"1254459154682919"},"recipient":{"id":"682498302938465"},"timestamp":'"$NOW"'000,"message":{"mid":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM","text":"Where is my order?"}}]}]}' meta-app-secret

echo "# Instagram: a direct message to our professional account"
meta instagram '{"object":"instagram","entry":[{"id":"17841405822304914","time":'"$NOW"'000,"messaging":[{"sender":{"id":"5678123400001"},"recipient":{"id":"17841405822304914"},"timestamp":'"$NOW"'000,"message":{"mid":"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1","text":"Do you ship to France?"}}]}]}' meta-app-secret

echo "# Facebook Page feed: a customer's comment on our post"
meta facebook '{"object":"page","entry":[{"id":"682498302938465","time":'"$NOW"',"changes":[{"field":"feed","value":{"from":{"id":"7001002003","name":"Ada Obi"},"item":"comment","verb":"add","comment_id":"682498302938465_101_202","post_id":"682498302938465_101","parent_id":"682498302938465_101","message":"My parcel never arrived","created_time":'"$NOW"'}}]}]}' meta-app-secret

echo "# Telegram Bot API: a private message to our bot"
post /webhooks/telegram/main -H 'Content-Type: application/json' \
  -H 'X-Telegram-Bot-Api-Secret-Token: telegram-secret-token' \
  --data-raw '{"update_id":900000001,"message":{"message_id":77,"from":{"id":111222333,"is_bot":false,"first_name":"Lena","language_code":"de"},"chat":{"id":111222333,"first_name":"Lena","type":"private"},"date":'"$NOW"',"text":"My router keeps rebooting"}}'

twilio() {  # form parameters (name=value ...): Twilio signs the URL + sorted name+value
  local url="$GW/webhooks/twilio/main" signed="$GW/webhooks/twilio/main" args=() p
  for p in $(printf '%s\n' "$@" | sort); do signed+="${p%%=*}${p#*=}"; done
  for p in "$@"; do args+=(--data-urlencode "$p"); done
  post /webhooks/twilio/main \
    -H "X-Twilio-Signature: $(printf '%s' "$signed" | b64_hmac -sha1 twilio-auth-token)" "${args[@]}"
}

echo "# Twilio SMS: a text to our sales number"
twilio AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f \
  From=+447700900456 To=+15557122661 Body=Quote NumMedia=0 SmsStatus=received

echo "# Twilio Voice: the customer who wrote on WhatsApp calls (one conversation, two legs)"
twilio AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX CallSid=CA8dfedb55c129dd4d6bd1f59af9d11080 \
  From=+447700900123 To=+15557122661 CallStatus=ringing Direction=inbound

echo "# Email: a raw message from the inbound-mail relay"
printf 'From: Sam Roe <sam@example.net>\r\nTo: support@acme.example\r\nSubject: Invoice 4417\r\nDate: %s\r\nMessage-ID: <inv-4417-1@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInvoice 4417 charges me twice.\r\n' \
  "$(date -R)" | post /webhooks/email/main -H 'Content-Type: message/rfc822' \
  -H 'Authorization: Bearer relay-token' --data-binary @-

echo "# Webchat: a verified visitor opens the widget"
VISITOR=u-8412
post /webhooks/webchat/main -H 'Content-Type: application/json' --data-raw '{"type":"message","visitor_id":"'"$VISITOR"'","message_id":"5b0e2c1e-0001","site":"shop","text":"Is the blue one in stock?","user_hash":"'"$(printf '%s' "$VISITOR" | hex_hmac webchat-identity-secret)"'"}'

echo "# X: a direct message to our account"
X='{"for_user_id":"3001","direct_message_events":[{"type":"message_create","id":"1494391298801","created_timestamp":"'"$NOW"'000","message_create":{"target":{"recipient_id":"3001"},"sender_id":"4001","message_data":{"text":"Still no refund?"}}}],"users":{"4001":{"id":"4001","name":"Kim","screen_name":"kim"}}}'
post /webhooks/x/main -H 'Content-Type: application/json' \
  -H "x-twitter-webhooks-signature: sha256=$(printf '%s' "$X" | b64_hmac -sha256 x-consumer-secret)" --data-raw "$X"
