namespace RinServe.Onnx;

/// <summary>A model file that breaks MODEL-CONTRACT.md: names the file and the metadata key or graph tensor at fault.</summary>
public sealed class ModelContractException : Exception
{
    public ModelContractException(string filePath, string key, string detail, Exception? inner = null)
        : base($"{filePath}: {key}: {detail}", inner)
    {
        FilePath = filePath;
        Key = key;
    }

    public string FilePath { get; }

    /// <summary>The metadata key (e.g. <c>rin.latents</c>), graph tensor (e.g. <c>x</c>) or <c>file</c> at fault.</summary>
    public string Key { get; }
}
