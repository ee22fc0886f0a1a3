"""SentencePiece's model file, a protocol buffer: the few fields the tokenizer needs, read
without the `sentencepiece` package (tokenizing needs tf-text only)."""


def _varint(data, position):
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _proto_fields(data):
    """(field number, value) of a serialized protocol buffer message; varints as ints."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            size, position = _varint(data, position)
            value = data[position : position + size]
            position += size
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value = data[position : position + size]
            position += size
        else:
            raise ValueError(f"wire type {wire_type}")
        if position > len(data):
            raise ValueError("truncated message")
        yield number, value


def _int64_to_signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_sentencepiece_model(proto):
    """The pieces, model type and special ids of a serialized SentencePiece `ModelProto`."""
    pieces, trainer = [], {}
    try:
        for number, value in _proto_fields(proto):
            if number == 1:
                piece = dict(_proto_fields(value))
                pieces.append(bytes(piece.get(1, b"")).decode("utf-8"))
            elif number == 2:
                trainer = dict(_proto_fields(value))
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"not a SentencePiece model ({error}).") from None
    if not pieces:
        raise ValueError("not a SentencePiece model: it has no pieces.")
    model_types = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
    special = {}
    for name, number, default in (("unk", 40, 0), ("bos", 41, 1), ("eos", 42, 2), ("pad", 43, -1)):
        index = _int64_to_signed(trainer.get(number, default))
        special[name] = index if 0 <= index < len(pieces) else None
    return {"pieces": pieces, "model_type": model_types.get(trainer.get(3, 1), "?"), **special}

