using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>
/// The one validation path of MODEL-CONTRACT.md: metadata keys parsed into a <see cref="ModelSpec"/>,
/// then the graph's inputs and outputs checked against it.
/// </summary>
internal static class ModelContract
{
    public const string Contract = "rin.contract";
    public const string Name = "rin.name";
    public const string Resolution = "rin.resolution";
    public const string Channels = "rin.channels";
    public const string NumClasses = "rin.num_classes";
    public const string ClassNames = "rin.class_names";
    public const string NullClass = "rin.null_class";
    public const string DefaultGuidance = "rin.default_guidance";
    public const string GuidanceIntervalKey = "rin.guidance_interval";
    public const string Family = "rin.family";
    public const string DefaultSampler = "rin.default_sampler";
    public const string DefaultSteps = "rin.default_steps";
    public const string PredictionKey = "rin.prediction";
    public const string InputScale = "rin.input_scale";
    public const string NormalizeInput = "rin.normalize_input";
    public const string Latents = "rin.latents";
    public const string TrainSchedule = "rin.train_schedule";
    public const string Trained = "rin.trained";

    public const string SupportedVersion = "1";

    public const string X = "x";
    public const string Gamma = "gamma";
    public const string ClassId = "class_id";
    public const string LatentsIn = "latents_in";
    public const string Pred = "pred";
    public const string LatentsOut = "latents_out";

    public static readonly string[] InputNames = [X, Gamma, ClassId, LatentsIn];
    public static readonly string[] OutputNames = [Pred, LatentsOut];

    /// <summary>Keys the contract requires; informational ones are only checked for presence.</summary>
    public static readonly string[] RequiredKeys =
    [
        Contract, Name, Resolution, Channels, NumClasses, ClassNames, PredictionKey, InputScale, NormalizeInput,
        Latents, TrainSchedule, "rin.patch_size", "rin.dataset", "rin.train_steps", "rin.params", Trained,
    ];

    public static (ModelSpec Spec, bool Trained) ReadMetadata(string path, IReadOnlyDictionary<string, string> metadata)
    {
        foreach (var key in RequiredKeys)
        {
            if (!metadata.TryGetValue(key, out var value) || string.IsNullOrWhiteSpace(value))
            {
                throw new ModelContractException(path, key, "required metadata key is missing or empty");
            }
        }

        if (metadata[Contract].Trim() != SupportedVersion)
        {
            throw new ModelContractException(path, Contract, $"contract version '{metadata[Contract]}' is not supported (expected {SupportedVersion})");
        }

        var resolution = PositiveInt(path, metadata, Resolution);
        var channels = PositiveInt(path, metadata, Channels);
        var numClasses = PositiveInt(path, metadata, NumClasses);
        var classNames = ReadClassNames(path, metadata[ClassNames], numClasses);

        int? nullClass = null;
        if (metadata.TryGetValue(NullClass, out var nullText))
        {
            // Class dropout adds one embedding row after the real classes, so the null id is num_classes.
            if (!int.TryParse(nullText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value != numClasses)
            {
                throw new ModelContractException(path, NullClass, $"'{nullText}' must equal {NumClasses} ({numClasses})");
            }

            nullClass = value;
        }

        var defaultGuidance = 0f;
        if (metadata.TryGetValue(DefaultGuidance, out var guidanceText))
        {
            if (!float.TryParse(guidanceText.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out defaultGuidance)
                || !float.IsFinite(defaultGuidance) || defaultGuidance < 0)
            {
                throw new ModelContractException(path, DefaultGuidance, $"'{guidanceText}' is not a finite number >= 0");
            }

            // Guidance mixes in the unconditional prediction, which only a model trained with class dropout has.
            if (defaultGuidance > 0 && nullClass is null)
            {
                throw new ModelContractException(path, DefaultGuidance, $"'{guidanceText}' needs {NullClass}, which the model lacks; only 0 is allowed without it");
            }
        }

        var prediction = metadata[PredictionKey].Trim() switch
        {
            "eps" => Prediction.Eps,
            "x" => Prediction.X,
            "v" => Prediction.V,
            var other => throw new ModelContractException(path, PredictionKey, $"'{other}' is not one of eps, x, v"),
        };

        if (!float.TryParse(metadata[InputScale].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var inputScale)
            || !float.IsFinite(inputScale) || inputScale <= 0)
        {
            throw new ModelContractException(path, InputScale, $"'{metadata[InputScale]}' is not a positive number");
        }

        var normalize = Bool(path, metadata, NormalizeInput);
        var trained = Bool(path, metadata, Trained);

        var latentParts = metadata[Latents].Split(',');
        if (latentParts.Length != 2
            || !int.TryParse(latentParts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var latentCount)
            || !int.TryParse(latentParts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var latentDim)
            || latentCount <= 0 || latentDim <= 0)
        {
            throw new ModelContractException(path, Latents, $"'{metadata[Latents]}' is not 'L,D' with positive integers");
        }

        string? family = null;
        if (metadata.TryGetValue(Family, out var familyText))
        {
            family = familyText.Trim();
            if (family.Length == 0)
            {
                throw new ModelContractException(path, Family, "is empty; leave the key out to take the name up to its first '-'");
            }
        }

        string? defaultSampler = null;
        if (metadata.TryGetValue(DefaultSampler, out var samplerText))
        {
            if (!Samplers.TryGet(samplerText, out var sampler))
            {
                throw new ModelContractException(path, DefaultSampler, $"'{UserText.Shorten(samplerText)}' is not one of {string.Join(", ", Samplers.Names)}");
            }
            defaultSampler = sampler.Name;
        }

        int? defaultSteps = null;
        if (metadata.TryGetValue(DefaultSteps, out var stepsText))
        {
            if (!int.TryParse(stepsText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var steps) || steps < 1 || steps > SamplingDefaults.MaxSteps)
            {
                throw new ModelContractException(path, DefaultSteps, $"'{UserText.Shorten(stepsText)}' is not an integer from 1 to {SamplingDefaults.MaxSteps}");
            }
            defaultSteps = steps;
        }

        var guidanceInterval = GuidanceInterval.Whole;
        if (metadata.TryGetValue(GuidanceIntervalKey, out var intervalText))
        {
            if (!GuidanceInterval.TryParse(intervalText, out guidanceInterval, out var intervalError))
            {
                throw new ModelContractException(path, GuidanceIntervalKey, intervalError!);
            }
        }

        var spec = new ModelSpec(
            metadata[Name].Trim(), resolution, channels, numClasses, classNames, nullClass, prediction, inputScale, normalize, latentCount, latentDim,
            defaultGuidance, family, defaultSampler, defaultSteps)
        {
            GuidanceInterval = guidanceInterval,
        };
        return (spec, trained);
    }

    /// <summary>Checks names, element types, ranks, the dynamic batch axis and the fixed sizes against the metadata.</summary>
    public static void CheckGraph(
        string path, ModelSpec spec, IReadOnlyDictionary<string, NodeMetadata> inputs, IReadOnlyDictionary<string, NodeMetadata> outputs)
    {
        CheckNames(path, "input", inputs, InputNames);
        CheckNames(path, "output", outputs, OutputNames);

        var image = new[] { (spec.Channels, Channels), (spec.Resolution, Resolution), (spec.Resolution, Resolution) };
        var latents = new[] { (spec.LatentCount, Latents), (spec.LatentDim, Latents) };
        CheckTensor(path, X, inputs[X], TensorElementType.Float, image);
        CheckTensor(path, Gamma, inputs[Gamma], TensorElementType.Float, []);
        CheckTensor(path, ClassId, inputs[ClassId], TensorElementType.Int64, []);
        CheckTensor(path, LatentsIn, inputs[LatentsIn], TensorElementType.Float, latents);
        CheckTensor(path, Pred, outputs[Pred], TensorElementType.Float, image);
        CheckTensor(path, LatentsOut, outputs[LatentsOut], TensorElementType.Float, latents);
    }

    private static void CheckNames(string path, string kind, IReadOnlyDictionary<string, NodeMetadata> actual, string[] expected)
    {
        foreach (var name in expected)
        {
            if (!actual.ContainsKey(name))
            {
                throw new ModelContractException(
                    path, name, $"graph has no {kind} '{name}' (its {kind}s: {string.Join(", ", actual.Keys)}; contract: {string.Join(", ", expected)})");
            }
        }

        foreach (var name in actual.Keys)
        {
            if (!expected.Contains(name))
            {
                throw new ModelContractException(path, name, $"graph has an unexpected {kind} '{name}' (contract: {string.Join(", ", expected)})");
            }
        }
    }

    /// <param name="fixedDims">Expected sizes after the batch axis, each with the metadata key that declares it.</param>
    private static void CheckTensor(
        string path, string name, NodeMetadata node, TensorElementType elementType, (int Size, string Key)[] fixedDims)
    {
        if (!node.IsTensor || node.ElementDataType != elementType)
        {
            throw new ModelContractException(path, name, $"must be a {elementType} tensor, graph has {node.ElementDataType}");
        }

        var dims = node.Dimensions;
        var shape = $"[{string.Join(", ", dims.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : node.SymbolicDimensions[i] is { Length: > 0 } s ? s : "?"))}]";
        if (dims.Length != fixedDims.Length + 1)
        {
            throw new ModelContractException(path, name, $"must have rank {fixedDims.Length + 1}, graph shape is {shape}");
        }

        if (dims[0] >= 0)
        {
            throw new ModelContractException(path, name, $"batch axis must be dynamic, graph shape is {shape}");
        }

        for (var i = 0; i < fixedDims.Length; i++)
        {
            // A dynamic size cannot contradict the metadata; a fixed one must equal it.
            if (dims[i + 1] >= 0 && dims[i + 1] != fixedDims[i].Size)
            {
                throw new ModelContractException(
                    path, fixedDims[i].Key, $"says {fixedDims[i].Size} but graph tensor '{name}' has shape {shape}");
            }
        }
    }

    private static int PositiveInt(string path, IReadOnlyDictionary<string, string> metadata, string key)
    {
        var text = metadata[key].Trim();
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            throw new ModelContractException(path, key, $"'{text}' is not a positive integer");
        }

        return value;
    }

    private static bool Bool(string path, IReadOnlyDictionary<string, string> metadata, string key) =>
        metadata[key].Trim().ToLowerInvariant() switch
        {
            "true" => true,
            "false" => false,
            var other => throw new ModelContractException(path, key, $"'{other}' is not true or false"),
        };

    private static string[] ReadClassNames(string path, string json, int numClasses)
    {
        string[]? names;
        try
        {
            names = JsonSerializer.Deserialize<string[]>(json);
        }
        catch (JsonException e)
        {
            throw new ModelContractException(path, ClassNames, $"is not a JSON array of strings ({e.Message})", e);
        }

        if (names is null || names.Length != numClasses || names.Any(n => n is null))
        {
            throw new ModelContractException(
                path, ClassNames, $"must be a JSON array of {numClasses} strings ({NumClasses}), got {names?.Length.ToString(CultureInfo.InvariantCulture) ?? "null"}");
        }

        return names;
    }
}
