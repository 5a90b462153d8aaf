"""Small hooks for the coordinator, Firestore and Slack.

They load client libraries: import them inside tasks, never at DAG parse time.
"""
