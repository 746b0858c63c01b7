"""Verifies webhook deliveries with the Standard Webhooks reference library.

Reads {"secret": "whsec_...", "deliveries": [{"headers": {...}, "body": "..."}]}
on stdin and prints one line of JSON: for each delivery, true when the library
accepts it (signature and timestamp) and the parsed body has the same id as the
webhook-id header, else the library's error.
"""
import json
import sys

from standardwebhooks import Webhook

request = json.load(sys.stdin)
hook = Webhook(request["secret"])
results = []
for delivery in request["deliveries"]:
    try:
        payload = hook.verify(delivery["body"], delivery["headers"])
        results.append(payload["id"] == delivery["headers"]["webhook-id"])
    except Exception as e:  # the library's own error says what failed
        results.append(f"{type(e).__name__}: {e}")
print(json.dumps(results))
