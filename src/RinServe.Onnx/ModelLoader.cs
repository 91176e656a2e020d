using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>Turns one model file into a validated <see cref="LoadedModel"/>.</summary>
public static class ModelLoader
{
    public const string Cpu = "CPU";
    public const string Cuda = "CUDA";

    /// <summary>
    /// Loads and validates <paramref name="path"/>. Throws <see cref="ModelContractException"/> (naming the file
    /// and the key) for a file that is not a valid RIN model, and <see cref="InvalidOperationException"/> when
    /// <c>ExecutionProvider = "cuda"</c> and CUDA cannot be used.
    /// </summary>
    public static LoadedModel Load(string path, OnnxModelOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        if (!File.Exists(path))
        {
            throw new ModelContractException(path, "file", "does not exist");
        }

        using var sessionOptions = CreateSessionOptions(path, options, logger, out var provider);
        InferenceSession session;
        try
        {
            session = new InferenceSession(path, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelContractException(path, "file", $"is not a loadable ONNX model ({e.Message.Trim()})", e);
        }

        OnnxDenoiser? denoiser = null;
        try
        {
            var metadata = new Dictionary<string, string>(session.ModelMetadata.CustomMetadataMap, StringComparer.Ordinal);
            var (spec, trained) = ModelContract.ReadMetadata(path, metadata);
            ModelContract.CheckGraph(path, spec, session.InputMetadata, session.OutputMetadata);
            denoiser = new OnnxDenoiser(session, spec);
            if (options.WarmUp)
            {
                WarmUp(path, denoiser, logger);
            }

            logger.LogInformation(
                "Loaded model {Name} ({Resolution}px, {Channels} channel(s), {Classes} classes, guidance {Guidance}, default guidance {DefaultGuidance}) from {Path} on {Provider}",
                spec.Name, spec.Resolution, spec.Channels, spec.NumClasses, spec.SupportsGuidance ? "available" : "unavailable", spec.DefaultGuidance, path, provider);
            if (!trained)
            {
                logger.LogWarning("Model {Path} has rin.trained=false: a shape/performance test model, its images are noise", path);
            }

            return new LoadedModel(path, denoiser, provider, trained);
        }
        catch
        {
            if (denoiser is not null)
            {
                denoiser.Dispose();
            }
            else
            {
                session.Dispose();
            }

            throw;
        }
    }

    private static SessionOptions CreateSessionOptions(string path, OnnxModelOptions options, ILogger logger, out string provider)
    {
        // Before any other ONNX Runtime object: the first one makes the process's environment.
        var shared = options.SharedThreadPool && OrtThreads.EnsureShared(options.IntraOpThreads, logger);
        var sessionOptions = new SessionOptions
        {
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = Math.Max(0, options.IntraOpThreads),
            InterOpNumThreads = Math.Max(0, options.InterOpThreads),
        };
        if (shared)
        {
            sessionOptions.DisablePerSessionThreads();
        }
        var requested = (options.ExecutionProvider ?? string.Empty).Trim().ToLowerInvariant();
        switch (requested)
        {
            case "cpu":
                provider = Cpu;
                logger.LogInformation("Model {Path}: CPU execution provider (ExecutionProvider=cpu)", path);
                return sessionOptions;
            case "cuda" or "auto":
                try
                {
                    AppendCuda(sessionOptions, options);
                    provider = Cuda;
                    logger.LogInformation(
                        "Model {Path}: CUDA execution provider on device {DeviceId} (ExecutionProvider={Requested}, gpu_mem_limit {Limit})",
                        path, options.DeviceId, requested, options.GpuMemoryLimitBytes > 0 ? options.GpuMemoryLimitBytes : "none");
                    return sessionOptions;
                }
                catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException)
                {
                    if (requested == "cuda")
                    {
                        sessionOptions.Dispose();
                        throw new InvalidOperationException(
                            $"{path}: ExecutionProvider=cuda but the CUDA provider cannot be used ({e.Message.Trim()}); "
                            + "install CUDA 13 and cuDNN 9 with the OnnxRuntimeGpu=true build, or set ExecutionProvider=auto or cpu",
                            e);
                    }

                    provider = Cpu;
                    logger.LogWarning(
                        "Model {Path}: CUDA execution provider unavailable ({Reason}); CPU takes over (ExecutionProvider=auto)",
                        path, e.Message.Trim());
                    return sessionOptions;
                }

            default:
                sessionOptions.Dispose();
                throw new ArgumentException(
                    $"ExecutionProvider '{options.ExecutionProvider}' is not one of cpu, cuda, auto", nameof(options));
        }
    }

    private static void AppendCuda(SessionOptions sessionOptions, OnnxModelOptions options)
    {
        using var cuda = new OrtCUDAProviderOptions();
        var settings = new Dictionary<string, string>
        {
            ["device_id"] = options.DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (options.GpuMemoryLimitBytes > 0)
        {
            settings["gpu_mem_limit"] = options.GpuMemoryLimitBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
            // Grow the arena only by what is asked, so the limit is not hit by power-of-two rounding.
            settings["arena_extend_strategy"] = "kSameAsRequested";
        }

        cuda.UpdateOptions(settings);
        sessionOptions.AppendExecutionProvider_CUDA(cuda);
    }

    private static void WarmUp(string path, OnnxDenoiser denoiser, ILogger logger)
    {
        var spec = denoiser.Spec;
        var stopwatch = Stopwatch.StartNew();
        try
        {
            denoiser.Denoise(
                1,
                new float[spec.PixelsPerImage],
                [0.5f],
                [0L],
                new float[spec.LatentsPerImage],
                new float[spec.PixelsPerImage],
                new float[spec.LatentsPerImage]);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelContractException(path, "file", $"fails its warm-up call ({e.Message.Trim()})", e);
        }

        logger.LogInformation("Model {Name} warmed up in {Milliseconds} ms", spec.Name, stopwatch.ElapsedMilliseconds);
    }
}
