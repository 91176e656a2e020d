using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace RinServe.Onnx;

/// <summary>
/// One intra-op thread pool for every ONNX Runtime session in the process. With a pool per session, a worker that steps
/// several models in turn (<c>BatchingWorker</c>) leaves each session's threads spinning after its call returns, on the
/// same cores the next model's threads need: measured on the 2-core box, a 10-step 64 px request took 1.2 s of sampling
/// beside 1024 px steps instead of 0.1 s (bench/RESULTS.md). The shared pool is the process-wide ONNX Runtime
/// environment, so it is made once, by the first load that asks for it, with that load's thread count.
/// </summary>
public static class OrtThreads
{
    private static readonly Lock Gate = new();
    private static int? _sharedThreads;

    /// <summary>
    /// Whether sessions may use the shared pool (<see cref="SessionOptions.DisablePerSessionThreads"/>): true once the
    /// environment holds it, false when the environment was made before without one (then sessions keep their own pools).
    /// </summary>
    public static bool EnsureShared(int threads, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        lock (Gate)
        {
            if (_sharedThreads is { } existing)
            {
                if (existing != threads)
                {
                    logger.LogWarning("ONNX Runtime's shared thread pool has {Existing} intra-op threads (0: one per core), not the {Asked} asked for: it is made once per process",
                        existing, threads);
                }
                return true;
            }
            if (OrtEnv.IsCreated)
            {
                logger.LogWarning("ONNX Runtime's environment was created without a shared thread pool; each session keeps its own");
                return false;
            }
            using var threading = new OrtThreadingOptions
            {
                GlobalIntraOpNumThreads = Math.Max(0, threads),
                GlobalInterOpNumThreads = 1,
                GlobalSpinControl = true,
            };
            var options = new EnvironmentCreationOptions { threadOptions = threading, logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING };
            OrtEnv.CreateInstanceWithOptions(ref options);
            _sharedThreads = threads;
            logger.LogInformation("ONNX Runtime: one intra-op thread pool of {Threads} threads (0: one per core) shared by every session", threads);
            return true;
        }
    }
}
