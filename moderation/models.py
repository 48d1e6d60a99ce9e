# The review queue and moderators' decisions arrive with the moderation issue.
