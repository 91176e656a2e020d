using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using static RinServe.Onnx.Tests.OnnxModels;

namespace RinServe.Onnx.Tests;

/// <summary>
/// ONNX Runtime's environment is process-wide and made by the first ORT call of any test. Made here, before every test,
/// as the service makes it (the shared pool), so that no test's outcome depends on which test happened to run first: a
/// CUDA-proof test's <c>OrtEnv.Instance()</c> ahead of every model load once left the whole run without a shared pool.
/// </summary>
internal static class OrtEnvironmentForTests
{
    [ModuleInitializer]
    internal static void MakeTheSharedPoolFirst() => OrtThreads.EnsureShared(1, NullLogger.Instance);
}

/// <summary>Counts the process's threads, so nothing else may load models meanwhile.</summary>
[CollectionDefinition(nameof(SharedThreadPoolTests), DisableParallelization = true)]
public sealed class ThreadCountingCollection;

[Collection(nameof(SharedThreadPoolTests))]
public sealed class SharedThreadPoolTests : IDisposable
{
    private const int Sessions = 4, Threads = 4;
    private readonly TempFolder _folder = new();
    private readonly ListLogger _log = new();

    public void Dispose() => _folder.Dispose();

    private static int OsThreads() => Directory.GetDirectories("/proc/self/task").Length;

    /// <summary>Threads the process gained while <paramref name="sessions"/> models loaded with these options (kept loaded).</summary>
    private (int Gained, List<LoadedModel> Models) Load(int sessions, OnnxModelOptions options)
    {
        var path = _folder.Write($"toy-{options.SharedThreadPool}.onnx", Toy(ToyMetadata()));
        var before = OsThreads();
        var models = Enumerable.Range(0, sessions).Select(_ => ModelLoader.Load(path, options, _log)).ToList();
        return (OsThreads() - before, models);
    }

    [Fact]
    public void Models_share_one_intra_op_pool_so_loading_more_adds_no_threads()
    {
        Assert.True(OperatingSystem.IsLinux(), "counts /proc/self/task");
        Load(1, new OnnxModelOptions { IntraOpThreads = Threads }).Models.ForEach(m => m.Dispose()); // the pool exists from here on
        var (shared, sharing) = Load(Sessions, new OnnxModelOptions { IntraOpThreads = Threads });
        var (own, owning) = Load(Sessions, new OnnxModelOptions { IntraOpThreads = Threads, SharedThreadPool = false });
        try
        {
            // A pool per session starts Threads - 1 workers (the caller is the last); the shared one exists already,
            // so the four sharing sessions start none. A thread or two of .NET's own may start meanwhile.
            Assert.True(own >= Sessions * (Threads - 1), $"a pool per session: {own} threads for {Sessions} sessions");
            Assert.True(shared <= 2, $"one shared pool: {shared} threads for {Sessions} sessions");
            Assert.DoesNotContain(_log.Entries, e => e.Message.Contains("without a shared thread pool"));
        }
        finally
        {
            sharing.Concat(owning).ToList().ForEach(m => m.Dispose());
        }
    }
}
