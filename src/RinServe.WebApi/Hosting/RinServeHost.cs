using Microsoft.AspNetCore.HttpOverrides;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using OpenTelemetry.Metrics;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Apis;
using RinServe.WebApi.Generation;
using RinServe.WebApi.Security;
using RinServe.Worker;

namespace RinServe.WebApi.Hosting;

/// <summary>The service's composition, one concern per method, in the order Program.cs reads.</summary>
public static class RinServeHost
{
    /// <summary>Binds and validates every options section; returns the deployment shape for composing the rest.</summary>
    public static RinServeOptions AddRinServeOptions(this WebApplicationBuilder builder)
    {
        var config = builder.Configuration;
        builder.Services.AddOptions<RinServeOptions>().Bind(config.GetSection(RinServeOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<SamplingOptions>().Bind(config.GetSection(SamplingOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<AuthOptions>().Bind(config.GetSection(AuthOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<RateLimitOptions>().Bind(config.GetSection(RateLimitOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<OnnxModelOptions>().Bind(config.GetSection("Onnx"))
            .Validate(o => o.ExecutionProvider is "cpu" or "cuda" or "auto", "Onnx:ExecutionProvider must be cpu, cuda or auto")
            .Validate(o => o.IntraOpThreads >= 0 && o.InterOpThreads >= 0 && o.GpuMemoryLimitBytes >= 0 && o.DeviceId >= 0, "Onnx thread counts, DeviceId and GpuMemoryLimitBytes must not be negative")
            .ValidateOnStart();
        var settings = config.GetSection(RinServeOptions.Section).Get<RinServeOptions>() ?? new RinServeOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Kestrel:Limits (RequestHeadersTimeout, KeepAliveTimeout, MaxConcurrentConnections, ...) from configuration, as
            // ASP.NET Core does not bind them by itself; the body limit is always RinServe:MaxRequestBodyBytes.
            config.GetSection("Kestrel:Limits").Bind(kestrel.Limits);
            kestrel.Limits.MaxRequestBodySize = settings.MaxRequestBodyBytes;
        });
        return settings;
    }

    /// <summary>RFC 7807 for every error: exceptions, bare status codes, rejected rate limits.</summary>
    public static void AddProblemAnswers(this WebApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = c =>
        {
            c.ProblemDetails.Extensions.TryAdd("traceId", c.HttpContext.TraceIdentifier);
            // ASP.NET Core's defaults give a type to most statuses, but not to these two.
            c.ProblemDetails.Type ??= c.ProblemDetails.Status switch
            {
                StatusCodes.Status413PayloadTooLarge => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
                StatusCodes.Status429TooManyRequests => "https://tools.ietf.org/html/rfc6585#section-4",
                _ => null,
            };
        });
        builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
    }

    /// <summary>Loads the model folder. The API role only reads the models' metadata, so it never takes a GPU.</summary>
    public static void AddModels(this WebApplicationBuilder builder, RinServeOptions settings)
    {
        var folder = Path.GetFullPath(settings.ModelsPath, builder.Environment.ContentRootPath);
        builder.Services.AddSingleton(sp =>
        {
            var configured = sp.GetRequiredService<IOptions<OnnxModelOptions>>().Value;
            var options = settings.RunsWorker ? configured : new OnnxModelOptions
            {
                ExecutionProvider = "cpu",
                WarmUp = false,
                IntraOpThreads = 1,
                InterOpThreads = 1,
            };
            var defaultFamily = sp.GetRequiredService<IOptions<RinServeOptions>>().Value.DefaultFamily;
            return ModelRegistry.LoadFolder(folder, options, sp.GetRequiredService<ILoggerFactory>(), defaultFamily);
        });
        builder.Services.AddSingleton<GenerateValidator>();
    }

    /// <summary>The queue (Redis or in-process) and, in the worker roles, the batching worker.</summary>
    public static void AddJobs(this WebApplicationBuilder builder, RinServeOptions settings)
    {
        builder.Services.AddJobQueue(builder.Configuration, settings.Redis);
        builder.Services.AddSingleton<ShutdownDrain>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ShutdownDrain>());
        builder.Services.AddHostedService<QueueDepthSampler>();
        builder.Services.AddOptions<Webhooks.WebhooksOptions>().Bind(builder.Configuration.GetSection(Webhooks.WebhooksOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<Webhooks.WebhookAddressPolicy>();
        builder.Services.AddSingleton<Webhooks.WebhookSender>();
        if (builder.Configuration.GetSection(Webhooks.WebhooksOptions.Section).Get<Webhooks.WebhooksOptions>() is { Enabled: true })
        {
            builder.Services.AddHostedService<Webhooks.WebhookDispatcher>();
        }
        if (settings.RunsWorker)
        {
            builder.Services.AddRinServeWorker();
        }
    }

    /// <summary>Optional API keys and the per-caller rate limit of POST /generate.</summary>
    public static void AddApiProtection(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ApiKeys>();
        builder.Services.AddRateLimiter(o =>
        {
            o.AddPolicy(GenerateApi.RateLimitPolicy, http =>
            {
                var limit = http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                if (!limit.Enabled)
                {
                    return RateLimitPartition.GetNoLimiter("off");
                }
                // Only a valid key earns its own window; any other key would be a fresh window for the asking.
                var keys = http.RequestServices.GetRequiredService<ApiKeys>();
                var caller = keys.Enabled && ApiKeys.Presented(http.Request) is { } key && keys.Match(key) is { } owner
                    ? "key:" + owner
                    : "ip:" + http.Connection.RemoteIpAddress;
                return RateLimitPartition.GetFixedWindowLimiter(caller, _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = limit.PermitLimit,
                    Window = limit.Window,
                    QueueLimit = 0,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var http = context.HttpContext;
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : Problems.DefaultRetryAfter;
                http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                var seconds = Problems.SetRetryAfter(http.Response, retryAfter);
                await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = http,
                    ProblemDetails =
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Rate limit exceeded",
                        Detail = $"too many requests from this caller; retry after {seconds} s",
                    },
                });
            };
        });
    }

    /// <summary>Health checks, Prometheus metrics of the service and of ASP.NET Core.</summary>
    public static void AddObservability(this WebApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks()
            .AddCheck<ModelsReadyCheck>("models", tags: ["ready"])
            .AddCheck<QueueReadyCheck>("queue", tags: ["ready"]);
        double[] seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(JobMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddView("rinserve.job.wait", new ExplicitBucketHistogramConfiguration { Boundaries = seconds })
            .AddView("rinserve.job.run", new ExplicitBucketHistogramConfiguration { Boundaries = seconds })
            .AddView("rinserve.step.duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] })
            .AddView("rinserve.step.rows", new ExplicitBucketHistogramConfiguration { Boundaries = [1, 2, 4, 8, 16, 32, 64] })
            .AddPrometheusExporter());
    }

    /// <summary>Swagger at /swagger.</summary>
    public static void AddApiDocs(this WebApplicationBuilder builder)
    {
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "RinServe",
                Version = "v1",
                Description = "Class-conditional RIN diffusion models over HTTP: generate images, follow jobs, list models. " +
                    "Errors are RFC 7807 problem details naming the parameter at fault.",
                License = new OpenApiLicense { Name = "MIT", Url = new Uri("https://opensource.org/license/mit") },
            });
            // Relative: the document describes whichever host serves it (behind a balancer, the balancer's address).
            o.AddServer(new OpenApiServer { Url = "/", Description = "The deployment that serves this document." });
            o.AddSecurityDefinition(SwaggerDocument.ApiKeyScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = "X-Api-Key",
                Description = "The API key, when the deployment configures keys (Auth:ApiKeys); an open deployment ignores it. " +
                    "`Authorization: Bearer <key>` is accepted too. A job is visible only to the key that made it.",
            });
            o.AddSecurityRequirement(document => new OpenApiSecurityRequirement
            {
                [new OpenApiSecuritySchemeReference(SwaggerDocument.ApiKeyScheme, document)] = [],
            });
            o.DocumentFilter<SwaggerDocument>();
            o.OperationFilter<SwaggerExamples>();
            var xml = Path.Combine(AppContext.BaseDirectory, "RinServe.WebApi.xml");
            if (File.Exists(xml))
            {
                o.IncludeXmlComments(xml);
            }
        });
    }

    /// <summary>Middleware, eager model loading (a bad model folder stops the start with its reason), endpoints by role.</summary>
    public static void UseRinServe(this WebApplication app, RinServeOptions settings)
    {
        if (settings.TrustedProxies.Length > 0)
        {
            // Only the listed balancers are believed (ASP.NET Core's defaults would trust any loopback peer), and only the
            // entry the balancer itself added: a client's own X-Forwarded-For, spoofed or not, is never the client.
            var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto, ForwardLimit = 1 };
            forwarded.KnownIPNetworks.Clear();
            forwarded.KnownProxies.Clear();
            foreach (var network in settings.TrustedNetworks())
            {
                forwarded.KnownIPNetworks.Add(network);
            }
            app.UseForwardedHeaders(forwarded);
        }
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRateLimiter();
        app.Services.GetRequiredService<ModelRegistry>();

        app.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (settings.ServesApi)
        {
            app.MapGenerateApi();
            app.MapJobsApi();
            app.MapModelsApi();
            app.UseSwagger();
            app.UseSwaggerUI();
            app.UsePlayground();
        }
    }

    /// <summary>The playground page at / : plain HTML, CSS and JS that the build copies next to the binary.</summary>
    public static void UsePlayground(this WebApplication app)
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "Playground");
        if (!Directory.Exists(folder))
        {
            app.Logger.LogWarning("No playground at {Folder}: / answers 404", folder);
            return;
        }
        var files = new PhysicalFileProvider(folder);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = files });
    }
}
