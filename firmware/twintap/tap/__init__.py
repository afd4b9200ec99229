# Tap endpoint: the dispatcher (path -> handler) and the services mounted on it.
