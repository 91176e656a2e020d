using Microsoft.Extensions.DependencyInjection;
using RinServe.Jobs;

namespace RinServe.Worker;

public static class WorkerServiceCollectionExtensions
{
    /// <summary>
    /// The worker side: the batching worker over the loaded ONNX models. The host registers the queue
    /// (<c>AddJobQueue</c>) and a <see cref="Onnx.ModelRegistry"/>.
    /// </summary>
    public static IServiceCollection AddRinServeWorker(this IServiceCollection services)
    {
        services.AddSingleton<IImageGenerator, OnnxImageGenerator>();
        services.AddBatchingWorker();
        return services;
    }
}
