# Signs a Twilio webhook request with Twilio's own Python helper library (an independent implementation
# of X-Twilio-Signature): reads {"token", "url", "params"} as JSON on stdin, prints the signature.
import json
import sys

from twilio.request_validator import RequestValidator

req = json.load(sys.stdin)
print(RequestValidator(req["token"]).compute_signature(req["url"], req["params"]))
