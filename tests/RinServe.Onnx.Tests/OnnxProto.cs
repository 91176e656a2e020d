using System.Text;

namespace RinServe.Onnx.Tests;

/// <summary>
/// Just enough of the protobuf wire format (and onnx.proto's field numbers) to write small ONNX models
/// and to rewrite the <c>metadata_props</c> of an existing one, so tests can make good and bad files.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _stream = new();

    public byte[] ToArray() => _stream.ToArray();

    public ProtoWriter Varint(int field, long value)
    {
        Tag(field, 0);
        WriteVarint((ulong)value);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        WriteVarint((ulong)value.Length);
        _stream.Write(value);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BitConverter.TryWriteBytes(bytes, value);
        _stream.Write(bytes);
        return this;
    }

    private void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

    private void WriteVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        _stream.WriteByte((byte)value);
    }
}

/// <summary>Builds a tiny RIN-shaped ONNX graph and edits the metadata of ONNX files.</summary>
internal static class OnnxModels
{
    // onnx.proto TensorProto.DataType
    public const int OnnxFloat = 1;
    public const int OnnxInt64 = 7;

    private const int ModelMetadataField = 14;

    public static Dictionary<string, string> ToyMetadata(int resolution = 8, int channels = 1, string latents = "4,6") => new()
    {
        ["rin.contract"] = "1",
        ["rin.name"] = $"toy-{resolution}",
        ["rin.resolution"] = resolution.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["rin.channels"] = channels.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["rin.num_classes"] = "3",
        ["rin.class_names"] = "[\"t-shirt\", \"trouser\", \"bag\"]",
        ["rin.null_class"] = "3",
        ["rin.prediction"] = "eps",
        ["rin.input_scale"] = "0.5",
        ["rin.normalize_input"] = "true",
        ["rin.latents"] = latents,
        ["rin.train_schedule"] = "sigmoid@-3,3,0.9",
        ["rin.patch_size"] = "2",
        ["rin.dataset"] = "none",
        ["rin.train_steps"] = "0",
        ["rin.params"] = "0",
        ["rin.trained"] = "false",
    };

    /// <summary>A tensor declaration; a null dimension is the dynamic batch axis "B".</summary>
    public sealed record Tensor(string Name, int ElementType, params long?[] Dims);

    /// <summary>
    /// A toy denoiser with the contract's signature: pred = 0.9·x + 0.1·γ + 0.01·class + mean(latents_in),
    /// latents_out = 0.5·latents_in + mean(x) + γ. Shapes are as declared (to make contradicting files).
    /// </summary>
    public static byte[] Toy(
        IReadOnlyDictionary<string, string> metadata,
        int channels = 1,
        int resolution = 8,
        int latentCount = 4,
        int latentDim = 6,
        Tensor[]? inputs = null,
        Tensor[]? outputs = null)
    {
        inputs ??=
        [
            new("x", OnnxFloat, null, channels, resolution, resolution),
            new("gamma", OnnxFloat, [null]),
            new("class_id", OnnxInt64, [null]),
            new("latents_in", OnnxFloat, null, latentCount, latentDim),
        ];
        outputs ??=
        [
            new("pred", OnnxFloat, null, channels, resolution, resolution),
            new("latents_out", OnnxFloat, null, latentCount, latentDim),
        ];

        var graph = new ProtoWriter().String(2, "toy-rin");
        graph.Message(5, FloatTensor("c09", 0.9f)).Message(5, FloatTensor("c01", 0.1f)).Message(5, FloatTensor("c001", 0.01f))
            .Message(5, FloatTensor("c05", 0.5f))
            .Message(5, Int64Tensor("shape4", [-1, 1, 1, 1])).Message(5, Int64Tensor("shape3", [-1, 1, 1]));
        graph
            .Message(1, Node("Mul", ["x", "c09"], ["x09"]))
            .Message(1, Node("Reshape", ["gamma", "shape4"], ["g4"]))
            .Message(1, Node("Mul", ["g4", "c01"], ["g01"]))
            .Message(1, Node("Cast", ["class_id"], ["classf"], new ProtoWriter().String(1, "to").Varint(20, 2).Varint(3, OnnxFloat)))
            .Message(1, Node("Reshape", ["classf", "shape4"], ["class4"]))
            .Message(1, Node("Mul", ["class4", "c001"], ["class001"]))
            .Message(1, Node("ReduceMean", ["latents_in"], ["latmean"], Ints("axes", 1, 2)))
            .Message(1, Node("Reshape", ["latmean", "shape4"], ["lat4"]))
            .Message(1, Node("Add", ["x09", "g01"], ["s1"]))
            .Message(1, Node("Add", ["s1", "class001"], ["s2"]))
            .Message(1, Node("Add", ["s2", "lat4"], ["pred"]))
            .Message(1, Node("Mul", ["latents_in", "c05"], ["lat05"]))
            .Message(1, Node("ReduceMean", ["x"], ["xmean"], Ints("axes", 1, 2, 3)))
            .Message(1, Node("Reshape", ["xmean", "shape3"], ["xmean3"]))
            .Message(1, Node("Reshape", ["gamma", "shape3"], ["g3"]))
            .Message(1, Node("Add", ["lat05", "xmean3"], ["l1"]))
            .Message(1, Node("Add", ["l1", "g3"], ["latents_out"]));
        foreach (var input in inputs)
        {
            graph.Message(11, ValueInfo(input));
        }

        foreach (var output in outputs)
        {
            graph.Message(12, ValueInfo(output));
        }

        var model = new ProtoWriter()
            .Varint(1, 8) // ir_version
            .String(2, "RinServe.Onnx.Tests")
            .Message(8, new ProtoWriter().String(1, string.Empty).Varint(2, 17)) // opset 17: ReduceMean takes axes as an attribute
            .Message(7, graph);
        foreach (var (key, value) in metadata)
        {
            model.Message(ModelMetadataField, new ProtoWriter().String(1, key).String(2, value));
        }

        return model.ToArray();
    }

    /// <summary>Replaces all metadata_props of an ONNX file, keeping every other field byte for byte.</summary>
    public static byte[] WithMetadata(byte[] onnx, Func<Dictionary<string, string>, Dictionary<string, string>> edit)
    {
        var kept = new MemoryStream();
        var metadata = new Dictionary<string, string>();
        var position = 0;
        while (position < onnx.Length)
        {
            var start = position;
            var tag = ReadVarint(onnx, ref position);
            var field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    ReadVarint(onnx, ref position);
                    break;
                case 1:
                    position += 8;
                    break;
                case 5:
                    position += 4;
                    break;
                case 2:
                    var length = (int)ReadVarint(onnx, ref position);
                    if (field == ModelMetadataField)
                    {
                        var entry = onnx.AsSpan(position, length).ToArray();
                        var (key, value) = ReadEntry(entry);
                        metadata[key] = value;
                        position += length;
                        continue;
                    }

                    position += length;
                    break;
                default:
                    throw new InvalidDataException($"wire type {tag & 7} at {start}");
            }

            kept.Write(onnx, start, position - start);
        }

        var writer = new ProtoWriter();
        foreach (var (key, value) in edit(metadata))
        {
            writer.Message(ModelMetadataField, new ProtoWriter().String(1, key).String(2, value));
        }

        kept.Write(writer.ToArray());
        return kept.ToArray();
    }

    private static (string Key, string Value) ReadEntry(byte[] entry)
    {
        string key = string.Empty, value = string.Empty;
        var position = 0;
        while (position < entry.Length)
        {
            var tag = ReadVarint(entry, ref position);
            var length = (int)ReadVarint(entry, ref position);
            var text = Encoding.UTF8.GetString(entry, position, length);
            position += length;
            if (tag >> 3 == 1)
            {
                key = text;
            }
            else
            {
                value = text;
            }
        }

        return (key, value);
    }

    private static ulong ReadVarint(byte[] data, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }

    private static ProtoWriter Node(string op, string[] inputs, string[] outputs, ProtoWriter? attribute = null)
    {
        var node = new ProtoWriter();
        foreach (var input in inputs)
        {
            node.String(1, input);
        }

        foreach (var output in outputs)
        {
            node.String(2, output);
        }

        node.String(3, $"{op}_{outputs[0]}").String(4, op);
        if (attribute is not null)
        {
            node.Message(5, attribute);
        }

        return node;
    }

    private static ProtoWriter Ints(string name, params long[] values)
    {
        var attribute = new ProtoWriter().String(1, name).Varint(20, 7); // AttributeType.INTS
        foreach (var value in values)
        {
            attribute.Varint(8, value);
        }

        return attribute;
    }

    private static ProtoWriter FloatTensor(string name, float value) =>
        new ProtoWriter().Varint(2, OnnxFloat).Float(4, value).String(8, name);

    private static ProtoWriter Int64Tensor(string name, long[] values)
    {
        var tensor = new ProtoWriter().Varint(1, values.Length).Varint(2, OnnxInt64);
        foreach (var value in values)
        {
            tensor.Varint(7, value);
        }

        return tensor.String(8, name);
    }

    private static ProtoWriter ValueInfo(Tensor tensor)
    {
        var shape = new ProtoWriter();
        foreach (var dim in tensor.Dims)
        {
            shape.Message(1, dim is { } size ? new ProtoWriter().Varint(1, size) : new ProtoWriter().String(2, "B"));
        }

        var type = new ProtoWriter().Message(1, new ProtoWriter().Varint(1, tensor.ElementType).Message(2, shape));
        return new ProtoWriter().String(1, tensor.Name).Message(2, type);
    }
}
