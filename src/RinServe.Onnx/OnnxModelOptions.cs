namespace RinServe.Onnx;

/// <summary>
/// How model files become ONNX Runtime sessions. Bound from configuration by the host.
/// </summary>
public sealed class OnnxModelOptions
{
    /// <summary>
    /// <c>cpu</c>: CPU only. <c>cuda</c>: CUDA required; if the provider cannot be appended (no CUDA 13 /
    /// cuDNN 9, or a CPU-only ONNX Runtime build) loading throws, so a GPU worker fails fast instead of
    /// serving a hundred times slower. <c>auto</c>: CUDA when it can be appended, otherwise a warning
    /// and CPU.
    /// </summary>
    public string ExecutionProvider { get; set; } = "cpu";

    /// <summary>CUDA device ordinal.</summary>
    public int DeviceId { get; set; }

    /// <summary>Cap on the CUDA arena in bytes (ORT's <c>gpu_mem_limit</c>); 0 = no limit.</summary>
    public long GpuMemoryLimitBytes { get; set; }

    /// <summary>Threads inside one operator; 0 = ONNX Runtime's default (one per physical core).</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Every session of the process on one pool of <see cref="IntraOpThreads"/> threads (<see cref="OrtThreads"/>), so the
    /// models a worker steps in turn do not compete for the cores with each other's spinning threads. false: a pool per session.
    /// </summary>
    public bool SharedThreadPool { get; set; } = true;

    /// <summary>Threads across operators; the graph runs sequentially, so 1 is enough.</summary>
    public int InterOpThreads { get; set; } = 1;

    /// <summary>Run one batch-1 call at load so the first request does not pay for kernel setup.</summary>
    public bool WarmUp { get; set; } = true;
}
