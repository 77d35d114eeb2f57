"""Confluent's own Python client on Personalizer's topics (tests/live_avro_outputs.rs runs it).

produce BOOTSTRAP REGISTRY SCHEMAS_DIR RECORDS
    RECORDS is JSON Lines of {"topic", "key", "format", "event"}: each event is produced
    to its topic, keyed, by a transactional producer (all at once, as a backlog). On an
    Avro topic the value comes from `AvroSerializer` with the project's schema of the
    event's type, registered by the serializer itself under `<topic>-value`; on a JSON
    topic it is the event's JSON.

consume BOOTSTRAP REGISTRY TOPIC...
    Reads every committed record of the topics with `AvroDeserializer` (the writer
    schema fetched by the id in each record) and prints one JSON object per record:
    {"topic", "key", "value"}, timestamps as RFC 3339, tombstones with a null value.

Any record it cannot handle is an error: the script exits non-zero and says which.
"""

import datetime
import json
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# Seconds one request to the registry may take (each is retried by the client).
REGISTRY_TIMEOUT_S = 20


def to_avro_dict(value, schema):
    """The project's JSON form of a value -> what fastavro writes for `schema`."""
    if isinstance(schema, list):
        if value is None:
            return None
        branches = [s for s in schema if s != "null"]
        if len(branches) != 1:
            raise ValueError(f"a union with several non-null branches: {schema}")
        return to_avro_dict(value, branches[0])
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            if isinstance(value, str):
                parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return int(parsed.timestamp() * 1000)
            return value
        kind = schema["type"]
        if kind == "record":
            return {
                field["name"]: to_avro_dict(value.get(field["name"]), field["type"])
                for field in schema["fields"]
            }
        if kind == "array":
            return [to_avro_dict(item, schema["items"]) for item in value]
        if kind == "map":
            return {k: to_avro_dict(v, schema["values"]) for k, v in value.items()}
        return to_avro_dict(value, kind)
    return value


def produce(bootstrap, registry, schemas_dir, records_path):
    # Every request to the registry ends: the client waits forever by default, and a
    # stalled request must fail the test with its cause, not hang it.
    client = SchemaRegistryClient({"url": registry, "timeout": REGISTRY_TIMEOUT_S})
    serializers = {}
    # All values are serialized (and the schemas registered) before the transaction
    # begins: the broker aborts a transaction open longer than its timeout, and the
    # registry's answers must not count against it.
    records = []
    with open(records_path) as lines:
        for line in lines:
            record = json.loads(line)
            event, topic = record["event"], record["topic"]
            if record["format"] == "avro":
                kind = event["type"]
                if kind not in serializers:
                    with open(f"{schemas_dir}/{kind}.avsc") as f:
                        text = f.read()
                    schema = json.loads(text)
                    serializers[kind] = AvroSerializer(
                        client,
                        text,
                        lambda obj, ctx, schema=schema: to_avro_dict(obj, schema),
                        {"auto.register.schemas": True},
                    )
                value = serializers[kind](
                    event, SerializationContext(topic, MessageField.VALUE)
                )
            elif record["format"] == "json":
                value = json.dumps(event).encode()
            else:
                raise ValueError(f"unknown format {record['format']!r}")
            records.append((topic, record["key"].encode(), value))
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"confluent-python-{records_path}",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    producer.commit_transaction(30)
    print(f"produced {len(records)} records", file=sys.stderr)


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def consume(bootstrap, registry, topics):
    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": registry, "timeout": REGISTRY_TIMEOUT_S})
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "confluent-python-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            # The end of a partition is reported, past any transaction markers.
            "enable.partition.eof": True,
        }
    )
    # Every partition with records, from its start to its end.
    ends = {}
    assignment = []
    metadata = consumer.list_topics(timeout=30)
    for topic in topics:
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            if high > low:
                ends[(topic, partition)] = high
                assignment.append(TopicPartition(topic, partition, low))
    consumer.assign(assignment)
    while ends:
        message = consumer.poll(10)
        if message is None:
            raise TimeoutError(f"nothing more to read, yet short of {ends}")
        place = (message.topic(), message.partition())
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                ends.pop(place, None)
                continue
            raise RuntimeError(message.error())
        value = message.value()
        if value is not None:
            value = plain(
                deserializer(
                    value, SerializationContext(message.topic(), MessageField.VALUE)
                )
            )
        print(
            json.dumps(
                {"topic": message.topic(), "key": message.key().decode(), "value": value}
            )
        )
    consumer.close()


def main(argv):
    if len(argv) >= 5 and argv[0] == "produce":
        produce(*argv[1:5])
    elif len(argv) >= 4 and argv[0] == "consume":
        consume(argv[1], argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
