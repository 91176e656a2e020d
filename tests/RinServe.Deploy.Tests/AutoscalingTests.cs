using RinServe.Jobs;

namespace RinServe.Deploy.Tests;

/// <summary>KEDA watches the streams the workers really read, and shutdowns leave time to finish a batch.</summary>
public sealed class AutoscalingTests
{
    private static IReadOnlyList<K8sObject> Base => Manifests.Rendered(Manifests.Base);
    private static K8sObject ScaledObject => Base.Single(o => o.Kind == "ScaledObject");
    private static IReadOnlyDictionary<string, string> Settings => Manifests.One(Manifests.Base, "ConfigMap", "rinserve-config").Node.StrMap("data");

    [Fact]
    public void Keda_reads_each_shipped_models_stream_with_the_workers_consumer_group()
    {
        const string group = RedisKeys.ConsumerGroup;
        // The streams the workers read, named where every Redis key is named.
        var keys = new RedisKeys(Settings.GetValueOrDefault("Jobs__KeyPrefix", new JobsOptions().KeyPrefix));
        var expected = Repo.ShippedModelNames.Select(m => keys.Stream(m).ToString()).ToHashSet(StringComparer.Ordinal);

        var triggers = ScaledObject.Node.Maps("spec.triggers").ToArray();
        Assert.All(triggers, t => Assert.Equal("redis-streams", t.Str("type")));
        Assert.All(triggers, t => Assert.Equal(group, t.Str("metadata.consumerGroup")));
        Assert.Equal(expected, triggers.Select(t => t.Str("metadata.stream")!).ToHashSet(StringComparer.Ordinal));

        // Per stream: the backlog (lag) and the jobs in flight (pending), each one worker per full batch.
        var batch = Settings["Workers__MaxBatch"];
        foreach (var stream in expected)
        {
            var mine = triggers.Where(t => t.Str("metadata.stream") == stream).ToArray();
            Assert.Equal(batch, Assert.Single(mine, t => t.Get("metadata.lagCount") is not null).Str("metadata.lagCount"));
            Assert.Equal(batch, Assert.Single(mine, t => t.Get("metadata.pendingEntriesCount") is not null).Str("metadata.pendingEntriesCount"));
        }
    }

    [Fact]
    public void Keda_reaches_redis_through_its_service_in_the_deployed_namespace_with_the_secret_password()
    {
        var ns = Manifests.Kustomization(Manifests.Base).Str("namespace");
        var service = Manifests.One(Manifests.Base, "Service", "rinserve-redis");
        var port = service.Node.Maps("spec.ports").Single().Str("port");
        foreach (var trigger in ScaledObject.Node.Maps("spec.triggers"))
        {
            // KEDA runs in its own namespace, so the short Service name would not resolve there.
            Assert.Equal($"{service.Name}.{ns}.svc.cluster.local:{port}", trigger.Str("metadata.address"));
            var auth = Base.Single(o => o.Kind == "TriggerAuthentication" && o.Name == trigger.Str("authenticationRef.name"));
            var password = Assert.Single(auth.Node.Maps("spec.secretTargetRef"));
            Assert.Equal("password", password.Str("parameter"));
            var redisPassword = Manifests.One(Manifests.Base, "StatefulSet", "rinserve-redis").Containers.Single()
                .Maps("env").Single(e => e.Str("name") == "REDIS_PASSWORD").Get("valueFrom.secretKeyRef")!;
            Assert.Equal((redisPassword.Str("name"), redisPassword.Str("key")), (password.Str("name"), password.Str("key")));
        }
    }

    [Fact]
    public void Keda_scales_the_worker_deployment_and_keeps_one_worker_reading()
    {
        var worker = Manifests.One(Manifests.Base, "Deployment", "rinserve-worker");
        Assert.Equal(("Deployment", worker.Name), (ScaledObject.Node.Str("spec.scaleTargetRef.kind"), ScaledObject.Node.Str("spec.scaleTargetRef.name")));
        var min = int.Parse(ScaledObject.Node.Str("spec.minReplicaCount")!);
        // Redis reports the lag as unknown after a queued job is canceled, until a worker reads past it.
        Assert.True(min >= 1, "with no worker, an unknown lag would never wake one");
        Assert.True(int.Parse(ScaledObject.Node.Str("spec.maxReplicaCount")!) > min);
        // A stream not created yet fails its trigger; the fallback must not ask for more than the minimum.
        Assert.Equal(min, int.Parse(ScaledObject.Node.Str("spec.fallback.replicas")!));
        Assert.DoesNotContain(Base, o => o.Kind == "HorizontalPodAutoscaler" && o.Node.Str("spec.scaleTargetRef.name") == worker.Name);
    }

    [Theory]
    [InlineData("rinserve-api")]
    [InlineData("rinserve-worker")]
    public void Kubernetes_waits_longer_than_the_host_shuts_down(string deployment)
    {
        var d = Manifests.One(Manifests.Base, "Deployment", deployment);
        var grace = int.Parse(d.PodSpec!.Str("terminationGracePeriodSeconds")!);
        var shutdown = int.Parse(d.Containers.Single().Env().Single(e => e.Name == "DOTNET_SHUTDOWNTIMEOUTSECONDS").Value!);
        Assert.True(grace > shutdown, $"{deployment}: terminationGracePeriodSeconds {grace} <= shutdown timeout {shutdown}");
    }

    [Fact]
    public void Worker_shutdown_timeout_covers_the_longest_batch_on_a_cpu_node()
    {
        // COSTS.md: ~164 ms per batch-4 call at 1024 px on the project's CPU machines; a GPU is far faster.
        const double SecondsPerBatchStepAt1024 = 0.164;
        var worker = Manifests.One(Manifests.Base, "Deployment", "rinserve-worker");
        var shutdown = int.Parse(worker.Containers.Single().Env().Single(e => e.Name == "DOTNET_SHUTDOWNTIMEOUTSECONDS").Value!);
        var maxSteps = int.Parse(Settings["Sampling__MaxSteps"]);
        Assert.True(shutdown >= maxSteps * SecondsPerBatchStepAt1024, $"shutdown timeout {shutdown} s < {maxSteps} steps x {SecondsPerBatchStepAt1024} s");
    }
}
