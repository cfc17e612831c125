# Job.compat, and the validators with Analytics Automated's rules (aa_seq, aa_pdb_file).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0009_scale_out'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='compat',
            field=models.CharField(blank=True, choices=[('', 'Sluice'), ('aa', 'Analytics Automated')], default='', help_text="Run-time semantics: Sluice's own (empty), or Analytics Automated's (aa) for a job imported from it (docs/migrating-from-aa.md).", max_length=8),
        ),
        migrations.AlterField(
            model_name='validator',
            name='validation_type',
            field=models.CharField(choices=[('none', 'none'), ('fasta', 'fasta'), ('seq', 'seq'), ('pdb', 'pdb'), ('png', 'png'), ('gif', 'gif'), ('jpeg', 'jpeg'), ('json', 'json'), ('csv', 'csv'), ('aa_seq', 'aa_seq'), ('aa_pdb_file', 'aa_pdb_file')], max_length=32),
        ),
    ]
