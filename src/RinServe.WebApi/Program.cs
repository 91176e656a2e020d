using RinServe.WebApi.Hosting;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = ContentRoot.Find() });

builder.AddConsoleLogFormat();
var settings = builder.AddRinServeOptions();
builder.AddProblemAnswers();
builder.AddModels(settings);
builder.AddJobs(settings);
builder.AddApiProtection();
builder.AddObservability();
builder.AddApiDocs();

var app = builder.Build();
app.UseRinServe(settings);
app.Run();

/// <summary>Entry point; public so WebApplicationFactory can start the app in tests.</summary>
public partial class Program;
