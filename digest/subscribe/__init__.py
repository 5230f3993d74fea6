"""Readers helping themselves: signing up, confirming, choosing, leaving, deleting.

rules.py decides what each of those does to a subscriber (inside the store's transaction);
web.py answers the pages for them in the daemon; feed.py is a reader's digests as a feed;
admin.py is the operator's `digest subscribers`. The mail stage sends what they queue.
"""
