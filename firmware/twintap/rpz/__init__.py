# Rapidomize client: MQTT session over umqtt.simple, topics, SSR handling, outbox.
